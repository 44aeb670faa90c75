#!/usr/bin/env bash
# Installs everything Peregrine needs on Debian 12 and builds the release binary.
#   scripts/setup.sh          system packages + ONNX Runtime + web assets + release build
#   scripts/setup.sh --deps   system packages + ONNX Runtime only (used by CI)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
ORT_LIB_DIR=${PEREGRINE_ORT_DIR:-/usr/local/lib/peregrine}
ORT_LIB="$ORT_LIB_DIR/libonnxruntime.so.$ORT_VERSION"

APT_PACKAGES=(pkg-config clang libclang-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  ffmpeg unzip python3-venv python3-pip time wrk)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$ORT_LIB" ]; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION from PyPI" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
  unzip -q -o -j "$tmp"/onnxruntime-*.whl "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp/lib"
  $SUDO mkdir -p "$ORT_LIB_DIR"
  $SUDO install -m 0644 "$tmp/lib/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
  rm -rf "$tmp"
fi
echo "setup: ONNX Runtime at $ORT_LIB" >&2

# Dashboard toolchain and assets (Node packages, Chromium for browser tests).
if [ -x scripts/setup-web.sh ]; then
  scripts/setup-web.sh
fi

[ "${1:-}" = "--deps" ] && exit 0

command -v cargo >/dev/null || { echo "setup: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
cargo build --release --locked -p peregrine

# The main job: analyse a sample video, then show the stored run.
DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
if [ -f "$DATA/videos/traffic_intersection_cctv_640x480.mp4" ]; then
  target/release/peregrine analyze "$DATA/videos/traffic_intersection_cctv_640x480.mp4" \
    --model "$DATA/models/yolox_nano.onnx" --db peregrine.db
  target/release/peregrine runs --db peregrine.db
else
  echo "setup: no sample video under $DATA/videos; skipping the sample analysis (set PEREGRINE_TEST_DATA)" >&2
fi
