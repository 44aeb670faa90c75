#!/usr/bin/env bash
# Live benchmark (issue 12): RTSP cameras served by scripts/rtsp_server.py
# from the sample traffic clip, analysed by `peregrine live` at 5 fps each.
#   bench/live/run.sh            capacity, overload, cost per stream; updates BENCHMARKS.md
#   bench/live/run.sh --quick    fewer, shorter runs; prints only
#   bench/live/run.sh --python   also the Python reference (OpenCV capture
#                                thread per stream + one onnxruntime session;
#                                venv bench/.venv-bench as bench/run.sh makes it)
# Needs scripts/setup.sh (ffmpeg, ONNX Runtime, GStreamer RTSP server, python3-gi).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing: run scripts/setup.sh" >&2; exit 1; }
/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
  || { echo "bench: python3-gi / gir1.2-gst-rtsp-server-1.0 missing: run scripts/setup.sh" >&2; exit 1; }
[ -x target/release/peregrine ] || cargo build --release --locked -p peregrine
PY=/usr/bin/python3
for a in "$@"; do
  if [ "$a" = "--python" ]; then
    VENV=bench/.venv-bench
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnxruntime, cv2" 2>/dev/null; then
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
    fi
    export LIVE_BENCH_PYTHON="$VENV/bin/python"
  fi
done
exec "$PY" bench/live/run.py "$@"
