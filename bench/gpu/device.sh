#!/usr/bin/env bash
# The GPU path measured on a machine with an NVIDIA GPU, in one go: model
# limits (CPU vs CUDA, batch 1/8/32), decode (software vs NVDEC), end to end
# (CPU vs CUDA, with detection parity), NVENC vs libx264 assembly, and live
# streams (files played as cameras) on the GPU. Prints tables and writes
# JSON lines to $OUT/gpu.jsonl.
#
#   bench/gpu/device.sh BIN DATA_DIR OUT_DIR
#
# BIN is a release `peregrine`; the GPU build of ONNX Runtime is found as
# usual (PEREGRINE_ORT_GPU_DIR), NVIDIA's libraries in PEREGRINE_CUDA_LIB_PATH
# (this script adds every nvidia/*/lib folder of the Python site-packages it
# finds). Knobs: FRAMES (model bench frames, default 3000), SHOTS (NVENC
# assembly shots, default 500), STREAMS ("16 32 64"), LIVE_S (20).
set -uo pipefail
BIN=$(readlink -f "$1"); DATA=$(readlink -f "$2"); OUT=$(readlink -f "$3")
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
LOG="$OUT/gpu.jsonl"; : > "$LOG"
VIDEO="$DATA/videos/traffic_highway_1280x720.mp4"
DYN="$DATA/models/yolox_nano_dynbatch.onnx"
FRAMES=${FRAMES:-3000}
SHOTS=${SHOTS:-500}
STREAMS=${STREAMS:-"16 32 64"}
LIVE_S=${LIVE_S:-20}
CORES=$(nproc)
Q=$(( CORES / 4 > 0 ? CORES / 4 : 1 ))
W=$(mktemp -d)

if [ -z "${PEREGRINE_CUDA_LIB_PATH:-}" ]; then
  PEREGRINE_CUDA_LIB_PATH=$(python3 - <<'PY' 2>/dev/null
import glob, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = sorted({d for r in roots for d in glob.glob(r + "/nvidia/*/lib")})
print(":".join(dirs))
PY
)
  export PEREGRINE_CUDA_LIB_PATH
fi
echo "## machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "cpu cores: $CORES"
echo "cuda libs: $PEREGRINE_CUDA_LIB_PATH"

rec() { echo "$1" >> "$LOG"; }
j() { python3 -c "import json,sys
try: d=json.loads(sys.argv[1])
except Exception: d={}
print($2)" "$1" 2>/dev/null || echo 0; }

echo; echo "## model limit (yolox_nano, 416x416, frames/s)"
printf "%-8s %6s %10s\n" device batch fps
for b in 1 8 32; do
  r=$("$BIN" --device cuda bench model "$VIDEO" --model "$DYN" --batch "$b" --frames "$FRAMES" --threads 2 2>>"$OUT/stderr.log")
  rec "{\"what\":\"model\",\"device\":\"cuda\",\"batch\":$b,\"r\":${r:-null}}"
  printf "%-8s %6s %10.1f\n" cuda "$b" "$(j "$r" 'd["fps"]')"
done
for b in 1 8; do
  r=$("$BIN" --device cpu bench model "$VIDEO" --model "$DYN" --batch "$b" --frames 600 --sessions 4 --threads $Q 2>>"$OUT/stderr.log")
  rec "{\"what\":\"model\",\"device\":\"cpu\",\"batch\":$b,\"r\":${r:-null}}"
  printf "%-8s %6s %10.1f   (4 sessions x %d threads)\n" cpu "$b" "$(j "$r" 'd["fps"]')" $Q
done

echo; echo "## decode limit (720p H.264)"
for mode in "--threads 0" "--nvdec"; do
  r=$("$BIN" bench decode "$VIDEO" $mode 2>>"$OUT/stderr.log")
  rec "{\"what\":\"decode\",\"mode\":\"$mode\",\"r\":${r:-null}}"
  printf "%-14s %10.1f fps  decoder %s\n" "$mode" "$(j "$r" 'd["fps"]')" "$(j "$r" 'd["decoder"]')"
done

echo; echo "## end to end: 8 copies of the 720p clip analysed at once"
for i in 1 2 3 4 5 6 7 8; do ln -sf "$VIDEO" "$W/clip$i.mp4"; done
for dev in cuda cpu; do
  if [ $dev = cuda ]; then extra=(--batch 8 --threads 2 --infer-workers 2 --jobs 8 --decode-threads 2);
  else extra=(--batch 1 --threads "$CORES" --infer-workers 4 --jobs 8 --decode-threads 1); fi
  python3 "$HERE/timed.py" "$W/time.$dev" "$BIN" --device $dev analyze "$W"/clip*.mp4 --model "$DYN" \
    --db "$W/$dev.db" --json -q --no-cache "${extra[@]}" > "$W/$dev.json" 2>>"$OUT/stderr.log"
  python3 - "$W/$dev.json" "$W/time.$dev" "$dev" "$LOG" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
wall, rss = open(sys.argv[2]).read().split()
frames = sum(r.get("frames", 0) for r in rows)
print(f"{sys.argv[3]:<6} {frames} frames in {float(wall):.2f} s = {frames/float(wall):.1f} fps, peak RSS {int(rss)/1024:.0f} MB, runs: {[r.get('status') for r in rows]}")
open(sys.argv[4], "a").write(json.dumps({"what": "e2e", "device": sys.argv[3], "frames": frames, "wall_s": float(wall), "rss_kb": int(rss)}) + "\n")
PY
done
"$BIN" export 1 --db "$W/cuda.db" > "$W/cuda.jsonl" 2>>"$OUT/stderr.log"
"$BIN" export 1 --db "$W/cpu.db" > "$W/cpu.jsonl" 2>>"$OUT/stderr.log"
echo; echo "## parity (run 1 of each: CUDA FP32 vs CPU)"
python3 "$HERE/parity.py" "$W/cpu.jsonl" "$W/cuda.jsonl" | tee -a "$OUT/parity.txt"

echo; echo "## NVENC vs libx264: $SHOTS one-second shots normalised to 1280x720"
python3 - "$VIDEO" "$SHOTS" "$W/shots.json" <<'PY'
import json, sys
video, n = sys.argv[1], int(sys.argv[2])
shots = [{"source": video, "in": (i * 3) % 10 + 0.0, "out": (i * 3) % 10 + 1.0} for i in range(n)]
json.dump({"shots": shots}, open(sys.argv[3], "w"))
PY
for codec in h264_nvenc libx264; do
  timeout 200 python3 "$HERE/timed.py" "$W/t.$codec" "$BIN" assemble "$W/shots.json" -o "$W/reel.$codec.mp4" \
    --mode normalize --codec $codec --json > "$W/a.$codec.json" 2>>"$OUT/stderr.log"
  rc=$?
  read -r wall rss < "$W/t.$codec" || { wall=0; rss=0; }
  printf "%-11s rc=%d %8.2f s  peak RSS %6.0f MB  %s\n" $codec $rc "$wall" "$((rss / 1024))" "$(head -c 300 "$W/a.$codec.json")"
  rec "{\"what\":\"assemble\",\"codec\":\"$codec\",\"rc\":$rc,\"wall_s\":$wall,\"rss_kb\":$rss}"
done

echo; echo "## live: N copies of the clip played as cameras at 25 fps, analysed at 25 fps on the GPU"
for n in $STREAMS; do
  srcs=(); for ((i = 0; i < n; i++)); do srcs+=("$VIDEO"); done
  timeout $((LIVE_S + 60)) "$BIN" --device cuda live "${srcs[@]}" --realtime --loop --fps 25 --duration "$LIVE_S" \
    --model "$DYN" --batch 32 --threads 2 --db "$W/live$n.db" --json > "$W/live$n.json" 2>>"$OUT/stderr.log"
  python3 - "$W/live$n.json" "$n" "$LOG" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
streams = [r for r in rows if "stream" in r]
summ = next((r["summary"] for r in rows if "summary" in r), {})
p95 = sorted(r["latency_ms"]["p95"] for r in streams) or [0]
fps = sorted(r["fps_analysed"] for r in streams) or [0]
print(f"{sys.argv[2]:>3} streams: fps analysed min {fps[0]:.1f} median {fps[len(fps)//2]:.1f}; p95 latency worst {p95[-1]:.0f} ms median {p95[len(p95)//2]:.0f} ms; shed {sum(r['frames_shed'] for r in streams)}; batch mean {summ.get('batch_size_mean', '?')}")
open(sys.argv[3], "a").write(json.dumps({"what": "live", "streams": int(sys.argv[2]), "fps_min": fps[0], "p95_worst": p95[-1], "summary": summ}) + "\n")
PY
done
echo; echo "## stderr (last lines)"; tail -5 "$OUT/stderr.log"
