#!/usr/bin/env bash
# Peregrine's analysis benchmark: decode limit, model limit, end-to-end,
# a Python reference pipeline and peak memory, side by side in one run.
#   bench/run.sh            3 clips, median of 3 runs, updates BENCHMARKS.md
#   bench/run.sh --smoke    1 clip, 1 run, prints the table only (CI)
#   bench/run.sh --device cuda   the same on an NVIDIA GPU (printed only; bench/gpu/device.sh is the GPU benchmark)
#   bench/run.sh --baseline OLD_BIN   adds OLD_BIN's end-to-end speed, interleaved (before/after)
# Needs scripts/setup.sh to have run (ffmpeg, ONNX Runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing: run scripts/setup.sh" >&2; exit 1; }
[ -x target/release/peregrine ] || cargo build --release --locked -p peregrine
VENV=bench/.venv-bench
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import supervision, onnxruntime, cv2" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
fi
exec "$VENV/bin/python" bench/run.py "$@"
