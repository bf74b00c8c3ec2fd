"""Speech synthesised at test time, with the true phone timings festival used (ground truth)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")

# festival's phone set (radio phones) -> the ARPAbet-style names the tests reason in
FESTIVAL_BILABIALS = {"p", "b", "m"}
FESTIVAL_OPEN_VOWELS = {"aa", "ae", "ah", "ao", "aw", "ay"}
FESTIVAL_ROUNDED = {"uw", "uh", "ow", "w"}
FESTIVAL_SPREAD_VOWELS = {"iy", "ih", "eh", "ae", "aa", "ah", "ey", "ay"}   # lips spread or open
FESTIVAL_VOWELS = FESTIVAL_SPREAD_VOWELS | {"ax", "er", "ao", "aw", "oy", "uh", "uw", "ow"}
FESTIVAL_SILENCE = {"pau", "h#", "#"}


@dataclass(frozen=True)
class Seg:
    phone: str
    start: float
    end: float


def have_festival() -> bool:
    return shutil.which("festival") is not None


def festival_say(text: str, voice: str, out: Path, pad: float = 0.0) -> list[Seg]:
    """Write `out` (16-bit WAV) saying `text` with festival `voice`; return its phone segments.

    pad: seconds of room-tone silence (faint noise, as in a real recording) added at both ends.
    """
    segs_path = out.with_suffix(".segs")
    script = out.with_suffix(".scm")
    quoted = text.replace("\\", "").replace('"', "")
    script.write_text(
        f'(voice_{voice})\n(set! utt (Utterance Text "{quoted}"))\n(utt.synth utt)\n'
        f'(utt.save.wave utt "{out}" \'riff)\n(utt.save.segs utt "{segs_path}")\n'
        f'(utt.save.words utt "{out.with_suffix(".words")}")\n')
    subprocess.run(["festival", "--batch", str(script)], check=True, capture_output=True, timeout=120)
    segs: list[Seg] = []
    start = 0.0
    body = segs_path.read_text().split("#", 1)[1]
    for line in body.strip().splitlines():
        end, _, phone = line.split()
        segs.append(Seg(phone, start, float(end)))
        start = float(end)
    return pad_silence(out, segs, pad) if pad else segs


def festival_words(out: Path, segs: list[Seg], pad: float = 0.0) -> list[Seg]:
    """The words festival_say spoke into `out` (with its `pad`, and the `segs` it returned), as
    a TTS engine's word marks: each from the end of the one before (the first from the first
    phone) to its end."""
    body = out.with_suffix(".words").read_text().split("#", 1)[1]
    ends = [(float(line.split()[0]), line.split()[2]) for line in body.strip().splitlines()]
    speech = [s for s in segs if s.phone not in ("pau", "h#", "#")]
    start = speech[0].start
    words = []
    for end, word in ends:
        words.append(Seg(word, start, end + pad))
        start = end + pad
    return words


def pad_silence(wav: Path, segs: list[Seg], pad: float) -> list[Seg]:
    import soundfile as sf

    x, rate = sf.read(wav, dtype="float32")
    n = int(pad * rate)
    noise = np.random.default_rng(0).normal(0, 3e-4, 2 * n).astype(np.float32)
    sf.write(wav, np.concatenate([noise[:n], x, noise[n:]]), rate, subtype="PCM_16")
    shifted = [Seg(s.phone, s.start + pad, s.end + pad) for s in segs]
    return [Seg("pau", 0.0, pad)] + shifted + [Seg("pau", pad + len(x) / rate, 2 * pad + len(x) / rate)]


def espeak_say(text: str, voice: str, out: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True, timeout=60)


# --- scoring a track against true phone timings ---------------------------------------------

TOLERANCE_S = 0.04


def aperture(track) -> np.ndarray:
    """Lip aperture per frame: ARKit's jawOpen - mouthClose (0 = lips sealed)."""
    return track.channel("jawOpen") - track.channel("mouthClose")


def _window(track, seg: Seg, pad: float):
    t = track.times
    return (t >= seg.start - pad) & (t <= seg.end + pad)


@dataclass(frozen=True)
class PhoneSets:
    """Which of a synthesiser's phone labels belong to each check."""
    bilabials: frozenset
    open_vowels: frozenset
    rounded: frozenset
    silence: frozenset


FESTIVAL_SETS = PhoneSets(frozenset(FESTIVAL_BILABIALS), frozenset(FESTIVAL_OPEN_VOWELS),
                          frozenset(FESTIVAL_ROUNDED), frozenset(FESTIVAL_SILENCE))


def score(track, segs: list[Seg], sets: PhoneSets = FESTIVAL_SETS) -> dict[str, tuple[int, int]]:
    """(hits, total) per check: bilabial closures, open vowels open, rounded vowels rounded,
    long pauses closed."""
    ap = aperture(track)
    rounding = track.channel("mouthPucker") + track.channel("mouthFunnel")
    res = {"closure": [0, 0], "open": [0, 0], "round": [0, 0], "silence": [0, 0], "no_false_closure": [0, 0]}
    for s in segs:
        if s.phone in sets.open_vowels | sets.rounded and s.end - s.start >= 0.08:
            # precision: the middle of a vowel must not show sealed lips
            w = np.abs(track.times - (s.start + s.end) / 2) <= 0.02
            if w.any():
                res["no_false_closure"][0] += bool(ap[w].min() > 0.03)
                res["no_false_closure"][1] += 1
        if s.phone in sets.bilabials:
            w = _window(track, s, TOLERANCE_S)
            res["closure"][0] += bool(w.any() and ap[w].min() <= 0.02)
            res["closure"][1] += 1
        elif s.phone in sets.open_vowels and s.end - s.start >= 0.06:
            w = _window(track, s, 0.0)
            res["open"][0] += bool(w.any() and ap[w].max() >= 0.25)
            res["open"][1] += 1
        elif s.phone in sets.rounded:
            w = _window(track, s, TOLERANCE_S)
            res["round"][0] += bool(w.any() and rounding[w].max() >= 0.35)
            res["round"][1] += 1
        elif s.phone in sets.silence and s.end - s.start >= 0.5:
            w = (track.times >= s.start + 0.2) & (track.times <= s.end - 0.2)
            if w.any():
                res["silence"][0] += bool(ap[w].max() <= 0.02 and track.channel("jawOpen")[w].max() <= 0.05)
                res["silence"][1] += 1
    return {k: (v[0], v[1]) for k, v in res.items()}


@dataclass(frozen=True)
class Take:
    voice: str
    text: str
    wav: Path
    segs: list
    sets: PhoneSets


def synth_takes(sentences: list[str], folder: Path, pad: float = 0.8) -> list[Take]:
    """Every sentence in every festival voice and every timed espeak-ng voice, padded with room tone."""
    from espeak_timed import (ESPEAK_BILABIALS, ESPEAK_OPEN_VOWELS, ESPEAK_ROUNDED, ESPEAK_SILENCE,
                              ESPEAK_VOICES, espeak_say_timed)

    espeak_sets = PhoneSets(frozenset(ESPEAK_BILABIALS), frozenset(ESPEAK_OPEN_VOWELS),
                            frozenset(ESPEAK_ROUNDED), frozenset(ESPEAK_SILENCE | {"pau"}))
    takes = []
    for voice in FESTIVAL_VOICES:
        for i, text in enumerate(sentences):
            wav = folder / f"{voice}_{i}.wav"
            takes.append(Take(voice, text, wav, festival_say(text, voice, wav, pad), FESTIVAL_SETS))
    for voice in ESPEAK_VOICES:
        for i, text in enumerate(sentences):
            wav = folder / f"espeak_{voice}_{i}.wav"
            segs = pad_silence(wav, espeak_say_timed(text, voice, wav), pad)
            takes.append(Take(f"espeak {voice}", text, wav, segs, espeak_sets))
    return takes


def spoken_track(text: str, folder: Path, pad: float = 0.4, voice: str = "kal_diphone"):
    """Festival says `text` (with `pad` s of room tone at both ends) into `folder`; the motion
    engine animates it at 30 fps with its transcript. Returns (phone segments, MotionTrack);
    skips the calling test where festival is missing."""
    import pytest

    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import motion_from_audio
    from talkinghead.motion.options import MotionOptions

    if not have_festival():
        pytest.skip("festival is not installed (scripts/test.sh installs it)")
    wav = Path(folder) / "spoken.wav"
    segs = festival_say(text, voice, wav, pad=pad)
    return segs, motion_from_audio(load_audio(wav), SAMPLE_RATE, MotionOptions(fps=30, seed=3), text)
