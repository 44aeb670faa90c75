#!/usr/bin/env bash
# The API contract: schemathesis (all checks, every phase, stateful
# included) against a real `peregrine serve --token` and the OpenAPI document
# it serves. Zero failures is the pass mark.
#   bench/contract/run.sh [EXAMPLES]    examples per operation (default 300)
# Environment: PEREGRINE_BIN (default target/debug/peregrine, built if
# missing), PEREGRINE_TEST_DATA (default ../shared/data), SCHEMATHESIS (the
# command; default the venv bench/.venv-contract, created from
# bench/contract/requirements.txt), CONTRACT_ARGS (more schemathesis flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLES=${1:-300}
DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
BIN=${PEREGRINE_BIN:-target/debug/peregrine}
[ -x "$BIN" ] || cargo build --locked -p peregrine
if [ -z "${SCHEMATHESIS:-}" ]; then
  bench/contract/setup.sh
  SCHEMATHESIS=bench/.venv-contract/bin/schemathesis
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/media"
# One short real clip in the media root, so that valid jobs can exist.
ffmpeg -nostdin -v error -i "$DATA/videos/traffic_highway_cctv_320x240.avi" -frames:v 10 -c copy "$work/media/clip.avi"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=contract-token
RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$port" --token "$TOKEN" --db "$work/p.db" \
  --media-root "$work/media" --upload-dir "$work/uploads" --model "$DATA/models/yolox_nano.onnx" \
  --workers 1 --max-upload-mb 8 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
set +e
"$SCHEMATHESIS" --config-file bench/contract/schemathesis.toml --no-color run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all --phases examples,coverage,fuzzing,stateful \
  --max-examples "$EXAMPLES" --seed "${CONTRACT_SEED:-1}" --workers 1 --generation-database none \
  --request-timeout 30 ${CONTRACT_ARGS:-}
rc=$?
set -e
if grep -q "panicked" "$work/server.log"; then
  echo "contract: the server panicked:" >&2
  grep -B2 -A8 panicked "$work/server.log" >&2
  rc=1
fi
exit $rc
