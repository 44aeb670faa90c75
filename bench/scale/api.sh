#!/usr/bin/env bash
# The service's read paths on SQLite and on PostgreSQL side by side: the
# same run (the 640x480 clip analysed by `peregrine analyze`) stored in
# each, one `serve` per engine (no job running), wrk with CONNS connections
# against job status and 1000-detection pages (bench/serve/detections.lua).
# Prints a markdown table for BENCHMARKS.md.
#
#   bench/scale/api.sh                        # release build, 10 s each
#   PROFILE=debug DURATION=5s bench/scale/api.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
PROFILE=${PROFILE:-release}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
MODEL=$DATA/models/yolox_nano.onnx
CLIP=traffic_intersection_cctv_640x480.mp4
command -v wrk >/dev/null || { echo "bench/scale: wrk missing (apt-get install -y wrk)" >&2; exit 1; }
flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p peregrine
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/peregrine

WORK=$(mktemp -d)
DBNAME=peregrine_bench_api_$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql "$PG" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $DBNAME" >/dev/null
PGDB="${PG%/*}/$DBNAME"

p99() { awk '$1 == "99%" { print $2 }'; }
rps() { awk '/Requests\/sec/ { print $2 }'; }

echo "| engine | GET /api/v1/jobs/{id} p99 | req/s | GET /runs/{id}/detections?limit=1000 p99 | req/s |"
echo "|---|---|---|---|---|"
for engine in sqlite postgres; do
  if [ $engine = sqlite ]; then DB=$WORK/p.db; WORKERS=1; else DB=$PGDB; WORKERS=0; fi
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BASE="http://127.0.0.1:$PORT"
  RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --db "$DB" --workers $WORKERS \
    --media-root "$DATA/videos" --model "$MODEL" --upload-dir "$WORK/up" >"$WORK/$engine.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done
  # The run, written by the CLI into this engine; a job record to poll.
  RUN=$("$BIN" analyze "$DATA/videos/$CLIP" --model "$MODEL" --db "$DB" --json -q |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["run_id"])')
  JOB=$(curl -sf -H 'content-type: application/json' -d "{\"video\":\"$CLIP\",\"params\":{\"end\":0.5}}" \
    "$BASE/api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  STATUS=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$BASE/api/v1/jobs/$JOB" 2>&1)
  PAGES=$(SEED_RUN=$RUN wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/serve/detections.lua "$BASE" 2>&1)
  echo "| $engine | $(echo "$STATUS" | p99) | $(echo "$STATUS" | rps) | $(echo "$PAGES" | p99) | $(echo "$PAGES" | rps) |"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
done
echo
echo "$CONNS connections, $DURATION per endpoint, $PROFILE build, $(nproc) cores, PostgreSQL on the same machine."
