#!/usr/bin/env bash
# Install everything geoproc and its tests need on Debian 12 / Python 3.11+, from the project root:
#   * PostgreSQL 15 + PostGIS 3 (Debian packages; the tests start a private cluster, nothing system-wide)
#   * Chromium (Debian package; the tests render the HTML job report in it, headless)
#   * a virtual environment in ./.venv with geoproc installed (editable) and its test extras
#   * Azurite (the Azure Blob emulator) from npm into ./node_modules
# Safe to re-run: each step is skipped or quick when already done.
set -euo pipefail
cd "$(dirname "$0")"
log() { echo "[setup] $*" >&2; }

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  APT_PACKAGES="postgresql-15 postgresql-15-postgis-3 chromium"
  missing_pkgs=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing_pkgs="$missing_pkgs $p"; done
  if [ -n "$missing_pkgs" ]; then
    log "apt:$missing_pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends --no-upgrade $missing_pkgs >/dev/null
  fi
else
  log "not root or no apt-get: skipping PostgreSQL/PostGIS and Chromium (their tests will skip or fail)"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
log "pip install -e .[postgres,test]"
.venv/bin/python -m pip install -q ${PIP_EXTRA:-} -e ".[postgres,test]" 2>&1 \
  | { grep -v "is ignored: it is neither" || true; }

if command -v npm >/dev/null; then
  if [ ! -x node_modules/.bin/azurite-blob ]; then
    log "npm install azurite"
    [ -f package.json ] || echo '{"private": true}' > package.json
    npm install --no-audit --no-fund --silent azurite@3 >/dev/null 2>&1
  fi
else
  log "npm not found: skipping Azurite (the Azure tests will skip or fail)"
fi
log "ready: .venv/bin/geoproc --help"
