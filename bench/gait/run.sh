#!/usr/bin/env bash
# `peregrine gait` per mode: speed vs the pose model limit, accuracy vs
# counted heel strikes, peak memory vs video length. See run.py.
#   bench/gait/run.sh [--smoke]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing: run scripts/setup.sh" >&2; exit 1; }
[ -x target/release/peregrine ] || cargo build --release --locked -p peregrine
exec python3 bench/gait/run.py "$@"
