#!/usr/bin/env bash
# Installs schemathesis into bench/.venv-contract (idempotent: a second run
# only checks).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=bench/.venv-contract
want=$(grep -v '^#' bench/contract/requirements.txt | grep -o '==.*' | tr -d '=')
if [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $want"; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r bench/contract/requirements.txt
