#!/usr/bin/env bash
# Peregrine's ByteTrack vs supervision's on exactly the detections Peregrine's
# own pipeline produced for PETS09-S2L1 (person, every box >= 0.1), scored
# with motmetrics. Prints both rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
VENV=bench/.venv-track
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import supervision, motmetrics" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/track/requirements.txt
fi
cargo build -q --release --locked -p peregrine -p peregrine-track --examples
mkdir -p bench/out/track
DB=bench/out/track/pets09.db
rm -f "$DB" "$DB-wal" "$DB-shm"
target/release/peregrine analyze "$DATA/mot/PETS09-S2L1-480x360" --model "$DATA/models/yolox_nano.onnx" \
  --db "$DB" --classes person --conf 0.1 --no-track -q
target/release/peregrine export 1 --db "$DB" --format mot -o bench/out/track/det_peregrine.txt
"$VENV/bin/python" bench/track/compare_supervision.py --dets bench/out/track/det_peregrine.txt "$@"
