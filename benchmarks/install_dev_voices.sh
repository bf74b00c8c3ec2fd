#!/usr/bin/env bash
# Install the DEV voices of benchmarks/dev_voices.py (VOICES and MORE_VOICES: MBROLA, Debian contrib/non-free) and wordfreq:
#   bash benchmarks/install_dev_voices.sh
# Adds Debian's contrib and non-free components to apt's sources (bookworm; a file of its own,
# /etc/apt/sources.list.d/talkinghead-dev-voices.sources) where mbrola is not yet available.
# The MBROLA voices are for measuring only: their licences allow non-commercial use, so they must
# never be trained on (models/phones/CARD.md, "DEV voices").
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
# (apt-cache show succeeds for a package other packages merely name: ask for an installable version)
if [ -z "$(apt-cache madison mbrola 2>/dev/null)" ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" | $sudo tee /etc/apt/sources.list.d/talkinghead-dev-voices.sources >/dev/null
  $sudo apt-get update -qq
fi
voices=$(.venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks'); import dev_voices; print(' '.join('mbrola-' + v for v in dev_voices.ALL_VOICES))")
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mbrola espeak-ng $voices >/dev/null
.venv/bin/python -m pip install -q wordfreq
echo "DEV voices installed: python benchmarks/lipsync_accuracy.py --groups DEV"
