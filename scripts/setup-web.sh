#!/usr/bin/env bash
# Dashboard toolchain: Debian's chromium (browser tests), npm packages from
# web/package-lock.json, and the built dashboard in web/dist. Idempotent and
# quick when nothing changed. Called by scripts/setup.sh (also in --deps mode).
set -euo pipefail
cd "$(dirname "$0")/.."

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

# Rebuild only when a source is newer than the build.
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit)" ]; then
  echo "setup-web: building web/dist" >&2
  LOG=$(mktemp)
  npm run --silent build >"$LOG" 2>&1 || { cat "$LOG" >&2; rm -f "$LOG"; exit 1; }
  rm -f "$LOG"
fi
echo "setup-web: dashboard at web/dist" >&2
