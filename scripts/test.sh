#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian/Ubuntu machine, then run them.
#   bash scripts/test.sh [pytest args]
# Installs: festival + three English voices and espeak-ng (speech with known phone timings for the
# lip-sync tests), chromium + chromium-driver (the web page's browser test), a virtualenv in .venv
# with the package and its test extra, and one small venv per Blender line the add-on supports
# (.venv-blender-4.2, -4.5, -5.0: bpy + pytest, ~350 MB of download each the first time;
# tests/blender_lines.py) that tests/test_blender_lines.py runs the add-on's bpy tests in.
set -euo pipefail
cd "$(dirname "$0")/.."

# festvox-italp16k, -suopuhe-lj, -ca-ona-hts: held-out languages for the phone model's text alignment tests
packages=(festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng chromium chromium-driver
          festvox-italp16k festvox-suopuhe-lj festvox-ca-ona-hts)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python tests/blender_lines.py
exec .venv/bin/python -m pytest "$@"
