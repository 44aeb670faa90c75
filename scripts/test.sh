#!/usr/bin/env bash
# Runs Peregrine's whole test suite. Installs missing system dependencies
# first (idempotent), so it works on a fresh Debian 12 clone.
# Test data comes from ../shared/data, or $PEREGRINE_TEST_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps
export PEREGRINE_TEST_DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
if [ ! -f "$PEREGRINE_TEST_DATA/MANIFEST.md" ]; then
  echo "test: no test data at $PEREGRINE_TEST_DATA (set PEREGRINE_TEST_DATA)" >&2
  exit 1
fi
cargo test --workspace --locked "$@"
if [ -x scripts/test-web.sh ]; then
  scripts/test-web.sh
fi
