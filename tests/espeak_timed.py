"""Speech synthesised by espeak-ng, with the true phoneme timings espeak-ng used (ground truth).

Test-support module (no tests in here). The synthesis and the correction of espeak-ng's phoneme
markers to true segment boundaries live in `talkinghead.audio.espeak` (the phone model's training
data uses them too); its docstring says how the timings were established.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from speech import Seg

from talkinghead.audio import espeak

# US male, British male (different vowel qualities), US female.  All ship with Debian's
# espeak-ng-data.  The female variant is f1 rather than f3/f4/f2: those add an echo (and breath
# noise) that smears the closures this module's ground truth is about.
ESPEAK_VOICES = ("en-us", "en-gb", "en-us+f1")

# espeak-ng English phoneme mnemonics (as reported by phoneme events) grouped the way the lip-sync
# tests reason.  Conservative: only phonemes whose mouth shape is unambiguous.
ESPEAK_BILABIALS = {"p", "b", "m"}
# open: TRAP/BATH/PALM/START/STRUT/LOT/THOUGHT/CLOTH and the diphthongs that start open (PRICE,
# MOUTH); not the reduced "a#" of the article "a".  rounded: GOOSE/FOOT/CURE/GOAT and /w/.
ESPEAK_OPEN_VOWELS = {"a", "aa", "A:", "A@", "V", "0", "O:", "O2",
                      "aI", "aI@", "aI3", "aI2", "aU", "aU@"}
ESPEAK_ROUNDED = {"u:", "U", "U@", "oU", "w"}
# Every espeak pause ("_", "_:", "_!", ...) is reported as this one label; consecutive pauses are
# merged.  (The few ms of silence before the first phoneme are its prepause and belong to it.)
SILENCE = espeak.SILENCE
ESPEAK_SILENCE = {SILENCE}

have_espeak_lib = espeak.have_espeak_lib


def espeak_say_timed(text: str, voice: str, out: Path) -> list[Seg]:
    """Write `out` (16-bit mono WAV at espeak's rate, 22050 Hz) saying `text` with espeak-ng
    `voice`; return its phoneme segments (espeak mnemonics, seconds), contiguous from 0 to the end
    of the audio.  Pauses are `SILENCE`."""
    audio, rate, segs = espeak.synth_timed(text, voice)
    sf.write(str(out), audio, rate, subtype="PCM_16")
    return [Seg(s.phone, s.start, s.end) for s in segs]
