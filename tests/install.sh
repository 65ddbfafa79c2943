#!/usr/bin/env bash
# What the tests need from Debian, besides Python: a single-node Slurm (tests/slurm/install.sh) and Chromium for
# the dashboard's browser test (Playwright drives the system's /usr/bin/chromium; no browser is downloaded).
# Idempotent. Where it cannot install, it says which tests will be skipped (or fail, under REQUIRE_SLURM=1 /
# REQUIRE_BROWSER=1) and exits 0.
set -euo pipefail
cd "$(dirname "$0")"
bash slurm/install.sh

if command -v chromium >/dev/null 2>&1; then
  echo "browser install: chromium already installed; nothing to do"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser install: no apt-get on this machine; the dashboard's browser tests will be skipped"
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "browser install: not root and no sudo; the dashboard's browser tests will be skipped"
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -q chromium >/dev/null 2>&1 \
  || { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 && "${SUDO[@]}" apt-get install -y -q chromium >/dev/null; } \
  || { echo "browser install: apt-get install chromium failed; the dashboard's browser tests will be skipped"; exit 0; }
echo "browser install: $(chromium --version 2>/dev/null || echo chromium)"
