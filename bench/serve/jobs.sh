#!/usr/bin/env bash
# Many small jobs back to back: 20 two-second clips submitted to `peregrine
# serve` (one job worker), timed from the first submission until the last
# job is done. Run against two builds side by side (alternating rounds,
# median of ROUNDS) to measure what reusing inference engines across jobs
# saves. Prints a markdown table for BENCHMARKS.md.
#
#   bench/serve/jobs.sh                          # this build only
#   BASELINE=/path/to/old/peregrine bench/serve/jobs.sh
#   JOBS=20 ROUNDS=3 MODEL=yolo11n_pose_int8.onnx bench/serve/jobs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DATA=${PEREGRINE_TEST_DATA:-$ROOT/../shared/data}
JOBS=${JOBS:-20}
ROUNDS=${ROUNDS:-3}
SOURCE=${SOURCE:-$DATA/videos/traffic_intersection_cctv_640x480.mp4}
command -v ffmpeg >/dev/null || { echo "bench/serve/jobs: ffmpeg missing (scripts/setup.sh)" >&2; exit 1; }

cargo build -q --release -p peregrine
CURRENT=${CARGO_TARGET_DIR:-$ROOT/target}/release/peregrine

WORK=$(mktemp -d)
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

# Distinct 2-second clips: start times 1.4 s apart, so no two have the
# same content and no job matches another.
mkdir -p "$WORK/clips"
for i in $(seq 0 $((JOBS - 1))); do
  ffmpeg -loglevel error -ss "$(python3 -c "print($i * 1.4)")" -t 2 -i "$SOURCE" -an \
    -c:v libx264 -preset ultrafast "$WORK/clips/clip$i.mp4"
done

# Seconds from the first submission until every job is done.
run_once() {
  local bin=$1 round=$2
  local db="$WORK/$round-$(basename "$(dirname "$bin")").db"
  rm -f "$db"*
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local base="http://127.0.0.1:$port"
  PEREGRINE_MODEL="$DATA/models/${MODEL:-yolox_nano.onnx}" RUST_LOG=warn \
    "$bin" serve --listen "127.0.0.1:$port" --db "$db" --workers 1 \
    --media-root "$WORK/clips" --upload-dir "$WORK/uploads" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do curl -sf "$base/health" >/dev/null && break; sleep 0.05; done
  python3 - "$base" "$JOBS" <<'PY'
import json, sys, time, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
def call(path, body=None):
    req = urllib.request.Request(base + path, data=body and json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
t0 = time.perf_counter()
ids = [call("/api/v1/jobs", {"video": f"clip{i}.mp4"})["id"] for i in range(n)]
# One worker takes jobs oldest first: the last one ends last. Polled
# lightly, so the client does not take the CPU the jobs need.
while call(f"/api/v1/jobs/{ids[-1]}")["state"] not in ("done", "failed", "cancelled"):
    time.sleep(0.05)
elapsed = time.perf_counter() - t0
jobs = [call(f"/api/v1/jobs/{i}") for i in ids]
bad = [j["state"] for j in jobs if j["state"] != "done"]
if bad:
    sys.exit(f"bench/serve/jobs: {len(bad)} jobs ended {bad[0]}")
# Service time of a job: claimed to finished (model, sessions, analysis,
# final write), without the wait in the queue.
service = sorted(j["finished_at"] - j["started_at"] for j in jobs)
print(f"{elapsed:.3f} {service[len(service) // 2]:.3f}")
PY
  stop_server
}

declare -A TIMES JOBTIMES
BINS=("$CURRENT")
[ -n "${BASELINE:-}" ] && BINS=("$BASELINE" "$CURRENT")
for r in $(seq 1 "$ROUNDS"); do
  for b in "${BINS[@]}"; do
    read -r t j < <(run_once "$b" "$r")
    TIMES[$b]="${TIMES[$b]:-} $t"
    JOBTIMES[$b]="${JOBTIMES[$b]:-} $j"
    echo "round $r $b: $t s, median job $j s" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "$JOBS jobs of 2 s clips ($(basename "$SOURCE")), ${MODEL:-yolox_nano.onnx}, 1 worker, $(nproc) cores, median of $ROUNDS:"
echo
echo "| build | all jobs, wall s | per job, wall ms | one job claimed to done, median ms | wall vs baseline |"
echo "|---|---|---|---|---|"
BASE_T=""
for b in "${BINS[@]}"; do
  m=$(echo "${TIMES[$b]}" | median)
  j=$(echo "${JOBTIMES[$b]}" | median)
  [ -z "$BASE_T" ] && BASE_T=$m
  name=current; [ "$b" = "${BASELINE:-}" ] && name=baseline
  python3 -c "print(f'| $name | {$m:.2f} | {$m / $JOBS * 1000:.0f} | {$j * 1000:.0f} | {$m / $BASE_T:.2f} |')"
done
