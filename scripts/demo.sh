#!/usr/bin/env bash
# Set up talkinghead in .venv and animate the bundled example: the portrait examples/astronaut.jpg
# speaking examples/hello.flac.
#   bash scripts/demo.sh
# Writes out/hello.mp4 (the talking face, H.264 + AAC), out/hello_sheet.png (telling frames),
# out/hello.json (talkinghead's JSON) and out/hello.csv (a Live Link Face take).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
mkdir -p out
# The first run fetches MediaPipe's face_landmarker.task (SHA-256 checked) into ~/.cache/talkinghead.
.venv/bin/talkinghead render --portrait examples/astronaut.jpg --audio examples/hello.flac \
  --text-file examples/hello.txt -o out/hello.mp4 --contact-sheet out/hello_sheet.png
.venv/bin/talkinghead params --audio examples/hello.flac --text-file examples/hello.txt -o out/hello.json
.venv/bin/talkinghead params --audio examples/hello.flac --text-file examples/hello.txt -o out/hello.csv
