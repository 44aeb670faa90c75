#!/usr/bin/env bash
# Dashboard toolchain: Debian's chromium (browser tests), npm packages from
# web/package-lock.json, and the built dashboard in web/dist. Idempotent and
# quick when nothing changed. Called by scripts/setup.sh: with --deps before
# the release build (toolchain only), then without once the binary exists.
#
# The dashboard's API types are generated from the server's OpenAPI document
# (`peregrine openapi`, of $PEREGRINE_BIN or the newest of target/release and
# target/debug) into web/src/gen (not committed) by openapi-typescript.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS_ONLY=0
[ "${1:-}" = "--deps" ] && DEPS_ONLY=1

if ! command -v chromium >/dev/null 2>&1; then
  echo "setup-web: installing chromium (apt)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y chromium >/dev/null || {
    $SUDO apt-get update >/dev/null && $SUDO apt-get install -y chromium >/dev/null
  }
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-web: npm not found (install Node 20+); skipping the dashboard" >&2
  exit 1
fi

cd web
# Reinstall only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup-web: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
[ "$DEPS_ONLY" = 1 ] && exit 0

# The OpenAPI document of the binary; rewritten only when it changed, so an
# unchanged API does not rebuild the dashboard.
BIN=${PEREGRINE_BIN:-}
if [ -z "$BIN" ]; then
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  for b in "$TARGET/release/peregrine" "$TARGET/debug/peregrine"; do
    [ -x "$b" ] && { [ -z "$BIN" ] || [ "$b" -nt "$BIN" ]; } && BIN=$b
  done
fi
[ -n "$BIN" ] || { echo "setup-web: no peregrine binary to take the API from (cargo build -p peregrine, or set PEREGRINE_BIN)" >&2; exit 1; }
mkdir -p src/gen
"$BIN" openapi --out src/gen/openapi.json.new
if ! cmp -s src/gen/openapi.json.new src/gen/openapi.json; then
  mv src/gen/openapi.json.new src/gen/openapi.json
else
  rm -f src/gen/openapi.json.new
fi

# Rebuild only when a source (or the API) is newer than the build.
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit)" ]; then
  echo "setup-web: building web/dist" >&2
  LOG=$(mktemp)
  npm run --silent build >"$LOG" 2>&1 || { cat "$LOG" >&2; rm -f "$LOG"; exit 1; }
  rm -f "$LOG"
fi
echo "setup-web: dashboard at web/dist" >&2
