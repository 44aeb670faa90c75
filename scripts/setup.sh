#!/usr/bin/env bash
# Installs everything Peregrine needs on Debian 12 and builds the release binary.
#   scripts/setup.sh          system packages + ONNX Runtime + web assets + release
#                             build, linked as $PEREGRINE_BIN_DIR/peregrine
#                             (default /usr/local/bin) so `peregrine` is on the PATH
#   scripts/setup.sh --deps   system packages + ONNX Runtime only (used by CI)
#   scripts/setup.sh --link   only link an already built target/release/peregrine
#   scripts/setup.sh --gpu    also the GPU build of ONNX Runtime and NVIDIA's CUDA 13 /
#                             cuDNN 9 libraries (PyPI wheels, ~2 GB) in $ORT_LIB_DIR/gpu,
#                             for --device cuda; PEREGRINE_TENSORRT=1 adds TensorRT 10
#                             (~3 GB more) for --device tensorrt. Needs an NVIDIA driver
#                             for CUDA 13 at run time; the CPU path never needs any of it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
ORT_LIB_DIR=${PEREGRINE_ORT_DIR:-/usr/local/lib/peregrine}
ORT_LIB="$ORT_LIB_DIR/libonnxruntime.so.$ORT_VERSION"

APT_PACKAGES=(pkg-config clang libclang-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  ffmpeg unzip python3-venv python3-pip time wrk
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad mosquitto-clients)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BIN_DIR=${PEREGRINE_BIN_DIR:-/usr/local/bin}

# A symbolic link, so a later `cargo build --release` is what `peregrine` runs.
link_binary() {
  local bin="$PWD/target/release/peregrine" sudo=""
  if [ ! -x "$bin" ]; then
    echo "setup: $bin is not built yet: run scripts/setup.sh" >&2
    exit 1
  fi
  if [ ! -d "$BIN_DIR" ]; then
    mkdir -p "$BIN_DIR" 2>/dev/null || $SUDO mkdir -p "$BIN_DIR"
  fi
  [ -w "$BIN_DIR" ] || sudo=$SUDO
  $sudo ln -sfn "$bin" "$BIN_DIR/peregrine"
  echo "setup: $BIN_DIR/peregrine -> $bin" >&2
  case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) echo "setup: $BIN_DIR is not on your PATH; add it: export PATH=\"$BIN_DIR:\$PATH\"" >&2 ;;
  esac
}

if [ "${1:-}" = "--link" ]; then
  link_binary
  exit 0
fi

# The GPU stack, from PyPI only: onnxruntime-gpu's shared libraries and the
# NVIDIA wheels its `cuda`/`cudnn` extras name (plus cuBLAS, which cuDNN
# needs), unpacked as nvidia/<package>/lib; Peregrine loads them itself.
install_gpu() {
  local dir="$ORT_LIB_DIR/gpu" tmp
  local wheels=("onnxruntime-gpu==$ORT_VERSION" "nvidia-cuda-runtime~=13.0" "nvidia-cublas~=13.0"
    "nvidia-cuda-nvrtc~=13.0" "nvidia-curand~=10.0" "nvidia-cufft~=12.0" "nvidia-cudnn-cu13~=9.0")
  [ "${PEREGRINE_TENSORRT:-0}" = 1 ] && wheels+=("tensorrt-cu13-libs~=10.0")
  if [ -f "$dir/libonnxruntime_providers_cuda.so" ] && [ -f "$dir/nvidia/.complete" ] &&
     { [ "${PEREGRINE_TENSORRT:-0}" != 1 ] || [ -f "$dir/nvidia/.tensorrt" ]; }; then
    echo "setup: GPU build of ONNX Runtime at $dir" >&2
    return
  fi
  echo "setup: fetching the GPU build of ONNX Runtime $ORT_VERSION and NVIDIA's libraries from PyPI" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "${wheels[@]}"
  $SUDO mkdir -p "$dir/nvidia"
  unzip -q -o -j "$tmp"/onnxruntime_gpu-*.whl "onnxruntime/capi/libonnxruntime*.so*" -d "$tmp/ort"
  $SUDO install -m 0644 "$tmp"/ort/libonnxruntime* "$dir/"
  for w in "$tmp"/nvidia_*.whl "$tmp"/tensorrt_*.whl; do
    [ -f "$w" ] || continue
    # Wheels keep their libraries in nvidia/<name>/lib (tensorrt_libs/ for TensorRT).
    $SUDO unzip -q -o "$w" 'nvidia/*/lib/*' 'tensorrt_libs/*.so*' -d "$tmp/nv" 2>/dev/null || true
  done
  [ -d "$tmp/nv/tensorrt_libs" ] && $SUDO mkdir -p "$tmp/nv/nvidia/tensorrt" &&
    $SUDO mv "$tmp/nv/tensorrt_libs" "$tmp/nv/nvidia/tensorrt/lib"
  $SUDO cp -a "$tmp/nv/nvidia/." "$dir/nvidia/"
  $SUDO touch "$dir/nvidia/.complete"
  [ "${PEREGRINE_TENSORRT:-0}" = 1 ] && $SUDO touch "$dir/nvidia/.tensorrt"
  rm -rf "$tmp"
  echo "setup: GPU build of ONNX Runtime at $dir" >&2
}

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

if [ "${1:-}" = "--gpu" ]; then
  install_gpu
  shift
fi

# Dashboard toolchain (Node packages, Chromium for browser tests); the
# dashboard itself is built after the binary (its API types come from it).
if [ -x scripts/setup-web.sh ]; then
  scripts/setup-web.sh --deps
fi

# schemathesis for the API contract test (crates/peregrine/tests/contract.rs).
bench/contract/setup.sh

[ "${1:-}" = "--deps" ] && exit 0

command -v cargo >/dev/null || { echo "setup: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
cargo build --release --locked -p peregrine
link_binary
PEREGRINE_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/peregrine scripts/setup-web.sh

# The main job: analyse a sample video, then show the stored run.
DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
if [ -f "$DATA/videos/traffic_intersection_cctv_640x480.mp4" ]; then
  "$BIN_DIR/peregrine" analyze "$DATA/videos/traffic_intersection_cctv_640x480.mp4" \
    --model "$DATA/models/yolox_nano.onnx" --db peregrine.db
  "$BIN_DIR/peregrine" runs --db peregrine.db
else
  echo "setup: no sample video under $DATA/videos; skipping the sample analysis (set PEREGRINE_TEST_DATA)" >&2
fi
