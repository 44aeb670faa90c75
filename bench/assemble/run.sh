#!/usr/bin/env bash
# `peregrine assemble` against the ffmpeg command line, side by side in one run.
#   bench/assemble/run.sh                 500, 1000, 2000 shots, both paths
#   SIZES="500" REPEATS=1 bench/assemble/run.sh    quicker
# Env: PATHS ("copy smart normalize mixed"), MIXED_SIZES (timed mixed rows, default 500), MIXED_MEMORY
# (mixed shot count measured for peak memory only, default 2000), PEREGRINE (binary, default target/release/peregrine), WORK (scratch
# folder for generated media, default /tmp/peregrine-assemble-bench),
# SIZES, REPEATS (copy path, default 3), NORM_REPEATS (default 1),
# NORM_SIZE (normalising target, default 640x360), NORM_PRESET (veryfast).
# Generated media stay in WORK, never in the repository.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "bench: ffmpeg missing" >&2; exit 1; }
PEREGRINE=${PEREGRINE:-target/release/peregrine}
if [ ! -x "$PEREGRINE" ]; then
  cargo build --release --locked -p peregrine
fi
exec python3 bench/assemble/bench.py "$PEREGRINE" "$@"
