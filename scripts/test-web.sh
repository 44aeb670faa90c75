#!/usr/bin/env bash
# Browser tests of the dashboard: starts `peregrine serve` on a free
# loopback port with a fresh database holding CLI runs of real videos
# (PETS09-S2L1 analysed by two models, a pose run) and a seeded run with
# 100k detections, and drives Debian's chromium with playwright-core:
# - web/tests/export-parity.mjs follows a job's SSE stream and compares every
#   detection page with `peregrine export` of the same run;
# - web/tests/browser.mjs: the job form (model picker, a job to done, the
#   job page, an upload with its progress bar);
# - web/tests/workbench-player.mjs: runs list, the player's overlay in sync
#   with the playing video, keyboard stepping, filters, pose skeletons, a
#   new run opening at frame 0;
# - web/tests/workbench-eval.mjs: evaluation against PETS09's ground truth
#   (uploaded from the form), metric panels, the errors table's false
#   positives, the player colouring the matches;
# - web/tests/workbench-compare.mjs: the two PETS runs compared;
# - web/tests/workbench-perf.mjs: the 100k-detection run played while its
#   table is scrolled to the end; long tasks and frame times printed, and
#   asserted only with MAX_LONGTASK_MS=50 (the benchmark, BENCHMARKS.md);
# - web/tests/counts-chart.mjs, web/tests/live-page.mjs: counts chart and
#   live page.
# Screenshots of every view go to target-web/. Last,
# web/tests/assembled-playback.mjs plays a smart-cut `peregrine assemble`
# output to the end in chromium, then a smart render of mixed sources (SAR,
# size, frame rate and audio inserts), seeking to every switch.
# Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}

cargo build -q -p peregrine
cargo build -q -p peregrine-server --example seed_run
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug
# The dashboard's API types come from this binary's OpenAPI document.
PEREGRINE_BIN="$BIN_DIR/peregrine" scripts/setup-web.sh
command -v chromium >/dev/null || { echo "test-web: chromium missing (scripts/setup-web.sh installs it)" >&2; exit 1; }

WORK=$(mktemp -d)
OUT=$ROOT/target-web
mkdir -p "$OUT"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# CLI runs, listed by the server like its own: PETS09-S2L1's first 124
# frames (its ground truth's) by two detectors, and a pose run.
PETS="$DATA/videos/ped_pets09s2l1_campus_480x360.mp4"
run_id() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["run_id"])'; }
RUN_A=$("$BIN_DIR/peregrine" analyze "$PETS" --model "$DATA/models/yolox_nano.onnx" --db "$WORK/p.db" --end 12.4 --json 2>/dev/null | run_id)
RUN_B=$("$BIN_DIR/peregrine" analyze "$PETS" --model "$DATA/models/nanodet_m_416.onnx" --db "$WORK/p.db" --end 12.4 --json 2>/dev/null | run_id)
RUN_POSE=$("$BIN_DIR/peregrine" analyze "$DATA/videos/gait_sideon_whitewall_640x352.mp4" \
  --model "$DATA/models/yolo11n_pose_int8.onnx" --db "$WORK/p.db" --end 3 --json 2>/dev/null | run_id)
SEED_RUN=$("$BIN_DIR/examples/seed_run" "$WORK/p.db" "$DATA/videos/traffic_intersection_cctv_640x480.mp4" 909 111)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PEREGRINE_MODEL="$DATA/models/yolox_nano.onnx" PEREGRINE_WEB_DIR="$ROOT/web/dist" RUST_LOG=warn \
  "$BIN_DIR/peregrine" serve --listen "127.0.0.1:$PORT" --db "$WORK/p.db" \
  --media-root "$DATA/videos" --model-dir "$DATA/models" --upload-dir "$WORK/uploads" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

cd web
export BASE_URL="http://127.0.0.1:$PORT" SHOTS="$OUT"
web_test() {
  local t=$1; shift
  env "$@" timeout 300 node "tests/$t" || { echo "test-web: $t failed; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
}
web_test export-parity.mjs PEREGRINE_BIN="$BIN_DIR/peregrine" DB="$WORK/p.db"
web_test browser.mjs UPLOAD="$DATA/videos/gait_sideon_livingroom_960x540.mp4"
web_test workbench-player.mjs RUN_A="$RUN_A" RUN_POSE="$RUN_POSE"
web_test workbench-eval.mjs RUN_A="$RUN_A" GT="$DATA/mot/PETS09-S2L1-480x360/gt/gt.txt"
web_test workbench-compare.mjs RUN_A="$RUN_A" RUN_B="$RUN_B" GT="$DATA/mot/PETS09-S2L1-480x360/gt/gt.txt"
web_test workbench-perf.mjs SEED_RUN="$SEED_RUN" ${MAX_LONGTASK_MS:+MAX_LONGTASK_MS=$MAX_LONGTASK_MS}
web_test counts-chart.mjs SHOT="$OUT/dashboard-counts.png"
web_test live-page.mjs SHOT="$OUT/dashboard-live.png"

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
