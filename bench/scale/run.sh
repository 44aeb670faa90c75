#!/usr/bin/env bash
# Beyond one machine (issue 15), side by side in one run:
#  1. detection write throughput, SQLite (batched INSERT) vs PostgreSQL
#     (binary COPY), through the pipeline's RunStore/RunSink
#     (crates/store/examples/write_rate.rs);
#  2. job throughput of 1, 2 and 4 `peregrine worker` processes (one job
#     slot each) behind one `serve --workers 0`, on a PostgreSQL database:
#     JOBS short jobs (distinct 1-second spans of one clip at 10 fps) timed
#     from the first submission until the last is done.
# Prints markdown tables for BENCHMARKS.md.
#
#   bench/scale/run.sh                      # release build
#   PROFILE=debug JOBS=12 FRAMES=3000 PER_FRAME=30 bench/scale/run.sh
#   PG=postgres://postgres@127.0.0.1:5432/postgres bench/scale/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
PROFILE=${PROFILE:-release}
JOBS=${JOBS:-12}
FRAMES=${FRAMES:-3000}
PER_FRAME=${PER_FRAME:-30}
CLIP=traffic_intersection_cctv_640x480.mp4
MODEL=$DATA/models/yolox_nano.onnx
command -v psql >/dev/null || { echo "bench/scale: psql missing" >&2; exit 1; }

flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p peregrine -p peregrine-store --example write_rate
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/peregrine

echo "## Detection writes ($FRAMES frames x $PER_FRAME detections, $PROFILE build)"
echo
"${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/examples/write_rate" "$PG" "$FRAMES" "$PER_FRAME" 3
echo

WORK=$(mktemp -d)
PIDS=()
DBNAME=""
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  if [ -n "$DBNAME" ]; then psql "$PG" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null; fi
  DBNAME=""
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# Seconds from the first submission until every job is done, with $1 workers.
run_workers() {
  local n=$1
  DBNAME="peregrine_bench_scale_$$_$n"
  psql "$PG" -qc "CREATE DATABASE $DBNAME" >/dev/null
  local url="${PG%/*}/$DBNAME"
  local port=$((20000 + RANDOM % 20000))
  "$BIN" serve --listen "127.0.0.1:$port" --db "$url" --media-root "$DATA/videos" \
    --model "$MODEL" --workers 0 --upload-dir "$WORK/up" 2>"$WORK/api.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  for w in $(seq "$n"); do
    "$BIN" worker --db "$url" --media-root "$DATA/videos" --model "$MODEL" --jobs 1 \
      2>"$WORK/worker$w.log" &
    PIDS+=($!)
  done
  # Every worker registered (and its engine warm after the first job is
  # not waited for: loading the model is part of a worker's throughput).
  for _ in $(seq 100); do
    [ "$(curl -s "127.0.0.1:$port/api/v1/workers" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$n" ] && break
    sleep 0.1
  done
  local t0 ids=()
  t0=$(date +%s.%N)
  for j in $(seq 0 $((JOBS - 1))); do
    ids+=("$(curl -s -X POST "127.0.0.1:$port/api/v1/jobs" -H 'content-type: application/json' \
      -d "{\"video\":\"$CLIP\",\"params\":{\"start\":$j,\"end\":$((j + 1)),\"fps\":10,\"threads\":1}}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
  done
  for id in "${ids[@]}"; do
    while :; do
      s=$(curl -s "127.0.0.1:$port/api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
      case $s in done) break ;; failed|cancelled) echo "job $id $s" >&2; exit 1 ;; esac
      sleep 0.05
    done
  done
  python3 -c "print($(date +%s.%N) - $t0)"
  stop_all
}

echo "## Job throughput ($JOBS jobs: 1 s of $CLIP at 10 fps each, $PROFILE build, $(nproc) cores)"
echo
echo "| workers | wall (s) | jobs/min | vs 1 worker |"
echo "|---|---|---|---|"
base=""
for n in 1 2 4; do
  t=$(run_workers "$n")
  [ -z "$base" ] && base=$t
  python3 -c "print(f'| $n | {$t:.1f} | {$JOBS * 60 / $t:.1f} | {$base / $t:.2f} |')"
done
