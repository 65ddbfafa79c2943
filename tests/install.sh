#!/usr/bin/env bash
# What the tests need from Debian, besides Python: a single-node Slurm (tests/slurm/install.sh) and Chromium for
# the dashboard's browser test (Playwright drives the system's /usr/bin/chromium; no browser is downloaded), with a
# font that has Chinese characters (fonts-wqy-microhei: the pages write money in 万 and 亿, and scenario names may be
# Chinese; without it Chromium draws boxes).
# Idempotent. Where it cannot install, it says which tests will be skipped (or fail, under REQUIRE_SLURM=1 /
# REQUIRE_BROWSER=1) and exits 0.
set -euo pipefail
cd "$(dirname "$0")"
bash slurm/install.sh

PACKAGES=(chromium fonts-wqy-microhei)
if command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then
  echo "browser install: chromium and a Chinese font already installed; nothing to do"
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
"${SUDO[@]}" apt-get install -y -q "${PACKAGES[@]}" >/dev/null 2>&1 \
  || { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 && "${SUDO[@]}" apt-get install -y -q "${PACKAGES[@]}" >/dev/null; } \
  || { echo "browser install: apt-get install chromium failed; the dashboard's browser tests will be skipped"; exit 0; }
echo "browser install: $(chromium --version 2>/dev/null || echo chromium)"
