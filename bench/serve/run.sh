#!/usr/bin/env bash
# Load check for `peregrine serve`: 64 concurrent clients (wrk, Debian
# package) against job status and 1000-detection pages while a job is
# analysing. Loopback only; each wrk run is bounded (-d); the server is
# stopped at the end. Prints a markdown table for BENCHMARKS.md.
#
#   bench/serve/run.sh            # release build, 10 s per endpoint
#   DURATION=5s bench/serve/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { echo "bench/serve: wrk missing (apt-get install -y wrk)" >&2; exit 1; }

cargo build -q --release -p peregrine
cargo build -q --release -p peregrine-server --example seed_run
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

SEED_RUN=$("$BIN/examples/seed_run" "$WORK/p.db" "$DATA/videos/traffic_intersection_cctv_640x480.mp4" 909 111)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
PEREGRINE_MODEL="$DATA/models/yolox_nano.onnx" RUST_LOG=warn \
  "$BIN/peregrine" serve --listen "127.0.0.1:$PORT" --db "$WORK/p.db" --workers 1 \
  --media-root "$DATA/videos" --upload-dir "$WORK/uploads" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

# Keep the worker busy: full-length analyses, no cache, one after another.
submit() {
  curl -sf -H 'content-type: application/json' -d "{\"video\": \"$1\", \"params\": {\"no_cache\": true}}" "$BASE/api/v1/jobs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
JOB=$(submit sport_soccer_broadcast_1280x720.mp4)
submit traffic_intersection_cctv_640x480.mp4 >/dev/null
submit ped_concourse_overhead_1280x720.mp4 >/dev/null
state() { curl -sf "$BASE/api/v1/jobs?state=running&limit=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))'; }
for _ in $(seq 1 100); do [ "$(state)" = 1 ] && break; sleep 0.1; done

p99() { awk '$1 == "99%" { print $2 }'; }
rps() { awk '/Requests\/sec/ { print $2 }'; }
run_wrk() { wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$@" 2>&1; }

STATUS=$(run_wrk "$BASE/api/v1/jobs/$JOB")
RUNNING_1=$(state)
PAGES=$(SEED_RUN=$SEED_RUN run_wrk -s bench/serve/detections.lua "$BASE")
RUNNING_2=$(state)
FRAMES=$(curl -sf "$BASE/api/v1/jobs" | python3 -c 'import json,sys; print(sum(j["frames_done"] for j in json.load(sys.stdin)["items"]))')
echo "$STATUS" >&2
echo "$PAGES" >&2
[ "$RUNNING_1$RUNNING_2" = 11 ] || echo "bench/serve: WARNING: no job was analysing during a measurement" >&2

cat <<TABLE
| endpoint ($CONNS connections, $DURATION, a job analysing) | p99 | requests/s | target |
|---|---|---|---|
| GET /api/v1/jobs/{id} | $(echo "$STATUS" | p99) | $(echo "$STATUS" | rps) | < 20 ms |
| GET /api/v1/runs/{id}/detections?limit=1000 | $(echo "$PAGES" | p99) | $(echo "$PAGES" | rps) | < 50 ms |

Frames analysed meanwhile (all jobs): ${FRAMES:-?}; $(nproc) CPU cores; analysis at nice 10.
TABLE
