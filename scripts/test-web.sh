#!/usr/bin/env bash
# Browser test of the dashboard: starts `peregrine serve` on a free loopback
# port with a fresh database, seeds a run with 100k detections, and drives
# Debian's chromium with playwright-core (web/tests/browser.mjs): submit a
# job, wait for it, scroll the 100k-row table to the end, save a screenshot
# (target-web/dashboard-100k.png). Before that, web/tests/export-parity.mjs
# follows a job's SSE stream and compares every detection page with
# `peregrine export` of the same run; web/tests/counts-chart.mjs submits a job
# with a counting line and a zone and checks the run's counts chart against
# GET /api/v1/runs/{id}/counts (target-web/dashboard-counts.png); web/tests/live-page.mjs
# starts a live stream and checks its tile on the Live page (target-web/dashboard-live.png).
# Last, web/tests/assembled-playback.mjs
# plays a smart-cut `peregrine assemble` output to the end in chromium, then
# a smart render of mixed sources (SAR, size, frame rate and audio inserts),
# seeking to every switch.
# Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}

scripts/setup-web.sh
command -v chromium >/dev/null || { echo "test-web: chromium missing (scripts/setup-web.sh installs it)" >&2; exit 1; }

cargo build -q -p peregrine
cargo build -q -p peregrine-server --example seed_run
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

WORK=$(mktemp -d)
OUT=$ROOT/target-web
mkdir -p "$OUT"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

SEED_RUN=$("$BIN_DIR/examples/seed_run" "$WORK/p.db" "$DATA/videos/traffic_intersection_cctv_640x480.mp4" 909 111)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PEREGRINE_MODEL="$DATA/models/yolox_nano.onnx" PEREGRINE_WEB_DIR="$ROOT/web/dist" RUST_LOG=warn \
  "$BIN_DIR/peregrine" serve --listen "127.0.0.1:$PORT" --db "$WORK/p.db" \
  --media-root "$DATA/videos" --upload-dir "$WORK/uploads" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

cd web
BASE_URL="http://127.0.0.1:$PORT" PEREGRINE_BIN="$BIN_DIR/peregrine" DB="$WORK/p.db" \
  timeout 300 node tests/export-parity.mjs || { echo "test-web: failed; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
BASE_URL="http://127.0.0.1:$PORT" SEED_RUN="$SEED_RUN" SHOT="$OUT/dashboard-100k.png" \
  timeout 300 node tests/browser.mjs || { echo "test-web: failed; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
BASE_URL="http://127.0.0.1:$PORT" SHOT="$OUT/dashboard-counts.png" \
  timeout 300 node tests/counts-chart.mjs || { echo "test-web: failed; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
BASE_URL="http://127.0.0.1:$PORT" SHOT="$OUT/dashboard-live.png" \
  timeout 180 node tests/live-page.mjs || { echo "test-web: failed; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }

# Smart cuts: a source with B-frames and 1 s GOPs, cut off its keyframes.
cd "$ROOT"
ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=8 \
  -f lavfi -i sine=frequency=440:sample_rate=48000:duration=8 -c:v libx264 -preset veryfast \
  -g 25 -keyint_min 25 -sc_threshold 0 -bf 2 -pix_fmt yuv420p -c:a aac "$WORK/b.mp4"
cat >"$WORK/shots.json" <<'JSON'
{"shots": [{"source": "b.mp4", "in": 0.52, "out": 2.6}, {"source": "b.mp4", "in": 3, "out": 4},
           {"source": "b.mp4", "in": 5.2, "out": 5.8}, {"source": "b.mp4", "in": 6.36, "out": 8}]}
JSON
SUMMARY=$("$BIN_DIR/peregrine" assemble "$WORK/shots.json" -o "$WORK/smart.mp4" --json)
FRAMES=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["mode"]=="copy" and s["reencoded_shots"]==3, s; print(s["frames"])' "$SUMMARY")
DURATION=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["duration"])' "$SUMMARY")
cd web
VIDEO="$WORK/smart.mp4" FRAMES="$FRAMES" DURATION="$DURATION" timeout 120 node tests/assembled-playback.mjs

# Smart render of mixed sources: b.mp4 is the target; inserts differ in SAR,
# size, or frame rate and audio (30 fps, 44.1 kHz stereo); a switch at every shot.
cd "$ROOT"
ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine=frequency=660:sample_rate=48000 \
  -t 3 -vf setsar=4/3 -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p -c:a aac "$WORK/sar.mp4"
ffmpeg -v error -y -f lavfi -i mandelbrot=size=640x360:rate=25 -f lavfi -i sine=frequency=880:sample_rate=48000 \
  -t 3 -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p -c:a aac "$WORK/big.mp4"
ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=330:sample_rate=44100 \
  -t 3 -ac 2 -c:v libx264 -preset veryfast -g 30 -pix_fmt yuv420p -c:a aac "$WORK/fps30.mp4"
cat >"$WORK/mixed.json" <<'JSON'
{"shots": [{"source": "b.mp4", "in": 0, "out": 1}, {"source": "sar.mp4", "in": 0, "out": 1},
           {"source": "b.mp4", "in": 1, "out": 2.6}, {"source": "big.mp4", "in": 1, "out": 2},
           {"source": "b.mp4", "in": 3, "out": 4}, {"source": "fps30.mp4", "in": 0.5, "out": 1.5},
           {"source": "b.mp4", "in": 5, "out": 7}]}
JSON
SUMMARY=$("$BIN_DIR/peregrine" assemble "$WORK/mixed.json" -o "$WORK/mixed.mp4" --json)
FRAMES=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["mode"]=="mixed" and s["encoded_shots"]==3, s; print(s["frames"])' "$SUMMARY")
DURATION=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["duration"])' "$SUMMARY")
cd web
VIDEO="$WORK/mixed.mp4" FRAMES="$FRAMES" DURATION="$DURATION" SWITCHES="1,2,3.6,4.6,5.6,6.6" \
  timeout 120 node tests/assembled-playback.mjs
