#!/usr/bin/env bash
# Counting cost per frame (10 lines, 10 zones, 100 tracks) against the
# pipeline's time per frame. The pipeline figure is measured with
# `peregrine analyze` (release build) on the 640x480 traffic clip, tracking
# on, unless PIPELINE_MS is given. See BENCHMARKS.md "Counting".
#   bench/counting/run.sh            # builds peregrine --release if missing
#   PIPELINE_MS=5.3 bench/counting/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PEREGRINE_TEST_DATA:-$PWD/../shared/data}
if [ -z "${PIPELINE_MS:-}" ]; then
  cargo build -q --release -p peregrine
  DB=$(mktemp -d)/bench.db
  json=$(target/release/peregrine analyze "$DATA/videos/traffic_intersection_cctv_640x480.mp4" \
    --model "$DATA/models/yolox_nano.onnx" --db "$DB" --no-cache --json -q)
  PIPELINE_MS=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(1000.0 / r["fps"])' "$json")
  rm -rf "$(dirname "$DB")"
fi
cargo run -q --release -p peregrine-analytics --example counting -- --pipeline-ms "$PIPELINE_MS"
