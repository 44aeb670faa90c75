#!/usr/bin/env bash
# The service's read paths on SQLite and on PostgreSQL side by side, under
# the same load as bench/serve/run.sh: the same run (the 640x480 clip
# analysed by `peregrine analyze`) stored in each engine, and on each a job
# worker kept busy with full-length analyses (no cache) while wrk with
# CONNS connections measures job status (of the running job, whose row its
# worker renews) and 1000-detection pages (bench/serve/detections.lua).
# SQLite: one `serve --workers 1`. PostgreSQL: `serve --workers 0` (the
# API) and one `peregrine worker --jobs 1` (the analysis), sharing the
# database. The engines run one after the other in one invocation.
# Prints a markdown table for BENCHMARKS.md, with the machine's load.
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

running() { curl -sf "$BASE/api/v1/jobs?state=running&limit=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))'; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "| engine | GET /api/v1/jobs/{id} p99 | req/s | GET /runs/{id}/detections?limit=1000 p99 | req/s | a job analysing throughout | frames analysed meanwhile |"
echo "|---|---|---|---|---|---|---|"
for engine in sqlite postgres; do
  if [ $engine = sqlite ]; then DB=$WORK/p.db; WORKERS=1; else DB=$PGDB; WORKERS=0; fi
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BASE="http://127.0.0.1:$PORT"
  # The run, written by the CLI into this engine, before any server.
  RUN=$("$BIN" analyze "$DATA/videos/$CLIP" --model "$MODEL" --db "$DB" --json -q |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["run_id"])')
  RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --db "$DB" --workers $WORKERS \
    --media-root "$DATA/videos" --model "$MODEL" --upload-dir "$WORK/up" >"$WORK/$engine.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done
  if [ $engine = postgres ]; then
    RUST_LOG=warn "$BIN" worker --db "$DB" --media-root "$DATA/videos" --model "$MODEL" \
      --upload-dir "$WORK/up" --jobs 1 >"$WORK/worker.log" 2>&1 &
    PIDS+=($!)
  fi
  # Keep the worker busy: full-length analyses, no cache, one after another.
  ids=()
  for v in sport_soccer_broadcast_1280x720.mp4 traffic_intersection_cctv_640x480.mp4 ped_concourse_overhead_1280x720.mp4; do
    ids+=("$(curl -sf -H 'content-type: application/json' -d "{\"video\": \"$v\", \"params\": {\"no_cache\": true}}" \
      "$BASE/api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
  done
  JOB=${ids[0]}
  for _ in $(seq 1 600); do [ "$(running)" = 1 ] && break; sleep 0.1; done
  STATUS=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$BASE/api/v1/jobs/$JOB" 2>&1)
  R1=$(running)
  PAGES=$(SEED_RUN=$RUN wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/serve/detections.lua "$BASE" 2>&1)
  R2=$(running)
  FRAMES=$(curl -sf "$BASE/api/v1/jobs" | python3 -c 'import json,sys; print(sum(j["frames_done"] for j in json.load(sys.stdin)["items"]))')
  BUSY=yes; [ "$R1$R2" = 11 ] || BUSY=no
  echo "| $engine | $(echo "$STATUS" | p99) | $(echo "$STATUS" | rps) | $(echo "$PAGES" | p99) | $(echo "$PAGES" | rps) | $BUSY | $FRAMES |"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
done
echo
echo "$CONNS connections, $DURATION per endpoint, $PROFILE build, $(nproc) cores, PostgreSQL on the same machine;"
echo "load average (1, 5, 15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)."
