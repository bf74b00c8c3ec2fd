#!/usr/bin/env bash
# Set up talkinghead in .venv and animate the bundled example line.
#   bash scripts/demo.sh
# Writes out/hello.json (talkinghead's JSON) and out/hello.csv (a Live Link Face take).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
mkdir -p out
.venv/bin/talkinghead params --audio examples/hello.flac --text-file examples/hello.txt -o out/hello.json
.venv/bin/talkinghead params --audio examples/hello.flac --text-file examples/hello.txt -o out/hello.csv
