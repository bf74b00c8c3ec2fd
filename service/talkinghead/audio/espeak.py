"""espeak-ng through its C library: speech with the true phoneme timings it used, and text -> phonemes.

It drives the espeak-ng C library through ctypes rather
than the `espeak-ng` command, because only the library says *when* each phoneme is spoken: with
`espeakINITIALIZE_PHONEME_EVENTS` the synth callback receives an `espeakEVENT_PHONEME` per phoneme
carrying its mnemonic (`id.string`) and its position in the output (`sample`; `audio_position`
is the same in whole ms).

How the timings were established (checked against the audio for every voice in ESPEAK_VOICES,
on envelope plots, spectrograms and the numbers below):

* `event.sample` is an exact sample index into this call's output: where the wave generator
  reached the phoneme's marker in its command queue.  Each phoneme event's `sample` lies within
  the samples delivered up to its callback block, `audio_position == sample * 1000 // rate`, and
  the last event falls exactly on the total sample count.  No latency: a phoneme that starts
  after silence ("b" of "Bob" after the lead-in, "s" of "sa") sounds from exactly its marker.

* The marker is not always at the phoneme's acoustic start, for three structural reasons in
  espeak-ng's Generate() (synthesize.c).  Each one is corrected in `_segments`:

  1. Each phoneme is emitted as `DoPause(prepause)`, then its marker, then its sound.  A stop's
     prepause is its closure, so the 30-50 ms closure silence of /p t k/ (and of /b d g/ after a
     consonant) lands at the END of the previous phoneme's segment: every vowel before /p t/
     ended in ~40 ms of digital silence ("map", "apple", "bought").  Fix (`_closure_start`): the
     run of silence samples ending exactly at a marker belongs to that phoneme.  Silence samples
     are known exactly, even in voices with echo, from espeak-ng's output hooks
     (`espeak_ng_SetOutputHooks`: each output sample passes through exactly one of the silence /
     voiced / unvoiced hooks); without the hooks, digital zero is taken as silence.  The lead-in
     is the first phoneme's prepause too; after an espeak pause the closure cannot be told apart
     from the pause and stays silence.
  2. "For vowels following a liquid or nasal, do the phoneme event after the vowel-start": the
     marker of a vowel after /m n N/ comes 10-70 ms (median ~20) after the spectrum switched
     abruptly (one synthesis frame) from nasal murmur to vowel.  Fix (`_onset`): the vowel starts
     at that switch, the point of maximum spectral change (log band energies, <= 20 ms either
     side) between the nasal's marker and the vowel's.  Checked on spectrograms (70 of the ~120
     nasal+vowel pairs in the test texts).  After the liquids /l r w j/ the marker likewise sits at the end of the formant glide
     into the vowel, but that change is gradual with no edge to find: espeak's placement is kept,
     so a liquid's segment includes its glide into the vowel.
  3. A voiced stop's own frames run on through its release into 15-60 ms of vowel formants before
     the vowel's marker.  Fix (`_onset`): the vowel starts at the release, i.e. straight after
     the closure silence, or, after a vowel (where espeak voices the closure: a quiet, low-pass
     "voice bar"), at the voice bar -> release switch found as in 2.  A /b d g/ right after an
     espeak pause has neither, and keeps espeak's boundary (its release is in its segment).

* Result, "Bob bought a big map, my mother made a warm apple pie" (10 ms RMS frames, dB re full
  scale, floor -70): every /p b/ segment's quietest frame is 15-54 dB below the neighbouring
  vowels, every /m/ 9-40 dB (nasal murmur is voiced); mean level of bilabial segments -40 dB vs
  vowel segments -18..-19 dB in all three voices (uncorrected markers: -29 vs -21..-23 dB).
  Shifting all boundaries by a common offset, that contrast peaks at 0 ms (en-us, en-us+f1) and
  -5 ms (en-gb); with the raw markers it peaked at -30..-35 ms.  Over 3 texts (~45 bilabials per
  voice), the 10 ms envelope falls 10 dB below the preceding vowel a median 1-2 ms (IQR 0..3)
  after a bilabial's start (raw markers: -8..-12 ms, IQR -38..+2) and reaches the following
  vowel's level within -2..0 ms (IQR -4..+4) of the vowel's start (raw: -20..-23 ms).

Not reproducible bit-for-bit: espeak-ng keeps state between calls (e.g. its pitch flutter), so
the same text synthesised twice in one process can differ slightly.  The segments returned always
describe the audio written with them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

from talkinghead.audio.phones import PhoneSegment

SILENCE = "_"

_NASALS = {"m", "n", "N"}
_VOICED_STOPS = {"b", "d", "g"}
_LIQUIDS = {"l", "r", "w", "j"}
# consonants (everything else that is not a pause is vowel-like)
_CONSONANTS = _NASALS | {"p", "b", "t", "d", "k", "g", "t#", "?", "tS", "dZ", "f", "v", "T", "D",
                         "s", "z", "S", "Z", "h", "x", "C", "l", "r", "w", "j", "l/", "r-",
                         # other languages' consonants (German, French, Spanish, Polish, ...)
                         "R", "ts", "dz", "n^", "l^", "B", "G", "Q", "c", "J", "X", "*", "r*", "tS;",
                         "dZ;", "S;", "Z;", "s;", "z;", "t;", "d;", "n;", "l;", "ts;", "dz;", "ll", "rr"}

# --- ctypes binding of speak_lib.h / espeak_ng.h -------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_espeakINITIALIZE_PHONEME_EVENTS = 0x0001
_espeakCHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

_EV_LIST_TERMINATED = 0
_EV_MSG_TERMINATED = 6
_EV_PHONEME = 7
_EV_SAMPLERATE = 8
_RATE, _PITCH = 1, 3   # espeak_PARAMETER


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),          # sample index within this synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_SAMPLE_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_short)
_PHO_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int)


class _Hooks(ctypes.Structure):   # espeak_ng_OUTPUT_HOOKS
    _fields_ = [("outputPhoSymbol", _PHO_HOOK), ("outputSilence", _SAMPLE_HOOK),
                ("outputVoiced", _SAMPLE_HOOK), ("outputUnvoiced", _SAMPLE_HOOK)]


_KIND_SILENCE, _KIND_SOUND = 0, 1

_lock = threading.Lock()   # the library is one global synthesiser: one synthesis at a time
_lib = None
_rate = 0
_keep: list = []           # ctypes callbacks / hook struct, kept alive for the life of the process
_have_hooks = False
_chunks: list[np.ndarray] = []
_events: list[tuple[int, str]] = []   # (sample index, phoneme mnemonic)
_kinds = bytearray()                  # per output sample: _KIND_SILENCE or _KIND_SOUND


def _find_lib() -> tuple[str, bytes | None]:
    """(shared library, data folder or None for the library's default): the espeakng-loader
    wheel's copy (libespeak-ng 1.52 with every language's dictionary) when it is installed, else
    the system's."""
    try:
        import espeakng_loader
    except ImportError:
        return ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1", None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path().encode()


def have_espeak_lib() -> bool:
    try:
        ctypes.CDLL(_find_lib()[0])
    except OSError:
        return False
    return True


def _on_synth(wav, numsamples, events) -> int:
    global _rate
    i = 0
    while events[i].type != _EV_LIST_TERMINATED:
        ev = events[i]
        if ev.type == _EV_PHONEME:
            _events.append((ev.sample, ev.id.string.decode("utf-8", "replace")))
        elif ev.type == _EV_SAMPLERATE and ev.id.number > 0:
            _rate = ev.id.number
        elif ev.type == _EV_MSG_TERMINATED:
            break
        i += 1
    if wav and numsamples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0   # 0 = carry on synthesising


def _init():
    global _lib, _rate, _have_hooks
    if _lib is not None:
        return _lib
    path, data = _find_lib()
    lib = ctypes.CDLL(path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CB]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
    lib.espeak_GetCurrentVoice.argtypes = []
    lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _espeakINITIALIZE_PHONEME_EVENTS)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate})")
    cb = _SYNTH_CB(_on_synth)
    lib.espeak_SetSynthCallback(cb)
    _keep.append(cb)
    if hasattr(lib, "espeak_ng_SetOutputHooks"):
        silence = _SAMPLE_HOOK(lambda _v: _kinds.append(_KIND_SILENCE))
        sound = _SAMPLE_HOOK(lambda _v: _kinds.append(_KIND_SOUND))
        hooks = _Hooks(_PHO_HOOK(), silence, sound, sound)   # no phoneme-alignment hook
        lib.espeak_ng_SetOutputHooks.argtypes = [ctypes.POINTER(_Hooks)]
        lib.espeak_ng_SetOutputHooks.restype = ctypes.c_int
        lib.espeak_ng_SetOutputHooks(ctypes.byref(hooks))
        _keep.extend([silence, sound, hooks])
        _have_hooks = True
    _rate = rate
    _lib = lib
    return lib


def _set_voice(lib, voice: str) -> None:
    # As the espeak-ng command does for -v: a voice name/file first ("en-us", "en-us+f1"), else a
    # language ("en-gb" has no voice file of that name), then re-apply any "+variant" by file name.
    if lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK:
        return
    base, plus, variant = voice.partition("+")
    sel = _Voice(languages=base.encode())
    if lib.espeak_SetVoiceByProperties(ctypes.byref(sel)) != _EE_OK:
        raise UnknownLanguage(f"espeak-ng voice not found: {voice!r}")
    if plus:
        ident = lib.espeak_GetCurrentVoice().contents.identifier or b""
        name = ident.decode().rsplit("/", 1)[-1] + "+" + variant
        if lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise UnknownLanguage(f"espeak-ng voice variant not found: {voice!r}")


def _synth(text: str, voice: str, wpm: int | None = None,
           pitch: int | None = None) -> tuple[np.ndarray, int, list[tuple[int, str]], np.ndarray]:
    """Raw synthesis: (int16 samples, rate, [(marker sample, phoneme), ...], silence mask)."""
    with _lock:
        lib = _init()
        _set_voice(lib, voice)
        # a voice sets its own defaults; rate (words per minute) and pitch (0-100) override them
        if wpm is not None:
            lib.espeak_SetParameter(_RATE, int(wpm), 0)
        if pitch is not None:
            lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        _chunks.clear()
        _events.clear()
        _kinds.clear()
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _espeakCHARS_UTF8, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({err})")
        lib.espeak_Synchronize()
        audio = np.concatenate(_chunks).astype(np.int16) if _chunks else np.zeros(0, np.int16)
        events = list(_events)
        if _have_hooks and len(_kinds) == len(audio):
            silent = np.frombuffer(bytes(_kinds), np.uint8) == _KIND_SILENCE
        else:   # no hooks (or they disagree with the output): digital zero is pause output
            silent = audio == 0
        _chunks.clear()
        _events.clear()
        _kinds.clear()
        return audio, _rate, events, silent


# --- from markers to true segment boundaries ------------------------------------------------

def _closure_start(silent: np.ndarray, prev_start: int, start: int, whole: bool = False) -> int:
    """Start of the run of silence samples ending exactly at `start` (a phoneme's prepause, e.g.
    a stop closure), if it lies inside the previous segment (or is all of it, when `whole`);
    else `start`."""
    if start <= 0 or not silent[start - 1]:
        return start
    loud = np.flatnonzero(~silent[prev_start:start])
    run_start = prev_start + (int(loud[-1]) + 1 if len(loud) else 0)
    return run_start if run_start > prev_start or whole else start


def _band_matrix(n_fft: int, rate: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    edges = np.geomspace(150.0, min(5500.0, rate / 2 - 1), 22)
    return np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])]).astype(float)


def _spectral_switch(x: np.ndarray, rate: int, lo: int, hi: int) -> tuple[int, float]:
    """(t, d): the point t in (lo, hi] of maximum spectral change d (dB), comparing log band
    energies of the up to 20 ms before t (but after lo) with the 20 ms after t."""
    n_fft, hop = 256, 32
    half = n_fft // 2
    side = int(0.020 * rate)
    b = min(len(x), hi + side + n_fft)
    if b - lo < 2 * n_fft + 4 * hop:
        return hi, 0.0
    frames = np.lib.stride_tricks.sliding_window_view(x[lo:b], n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 @ _band_matrix(n_fft, rate).T + 1e-12
    centres = lo + half + hop * np.arange(len(power))
    best_t, best_d = hi, 0.0
    for t in range(lo + n_fft + 2 * hop, hi + 1, hop // 2):
        # frames wholly after lo and before t / wholly after t, each side at most `side` long
        before = (centres <= t - half) & (centres >= t - half - side)
        after = (centres >= t + half) & (centres <= t + half + side)
        if before.sum() < 3 or after.sum() < 3:
            continue
        d = float(np.sqrt(np.mean((10 * np.log10(power[after].mean(0) / power[before].mean(0))) ** 2)))
        if d > best_d:
            best_t, best_d = t, d
    return best_t, best_d


_SWITCH_DB = 8.0   # spectral change that counts as a switch; steady murmur/voice bar stays < 5 dB


def _onset(x: np.ndarray, rate: int, silent: np.ndarray, before: str, prev: str, start: int,
           prev_marker: int, marker: int) -> int:
    """True start of the sonorant whose marker is `marker`, following phoneme `prev` (marker
    `prev_marker`, true start `start` with its closure included; it follows phoneme `before`);
    `marker` when espeak's marker is already right."""
    if prev in _NASALS:
        # espeak put the marker after the vowel's onset; find the murmur -> vowel switch
        pause = np.flatnonzero(silent[prev_marker:marker])
        if len(pause):            # a pause between nasal and vowel: the vowel starts with it
            return prev_marker + int(pause[0])
        t, d = _spectral_switch(x, rate, prev_marker, marker)
        return t if d >= _SWITCH_DB else marker
    if prev in _VOICED_STOPS:
        # The stop's own frames run through its release into the vowel: the vowel starts at the
        # release.  espeak gives a voiced stop a voice bar before the release only after a vowel
        # (Generate(), phVSTOP); otherwise the release comes straight after the closure silence.
        pause = np.flatnonzero(silent[start:marker])
        sound = start + int(pause[-1]) + 1 if len(pause) else start
        if before in _CONSONANTS or before.startswith("_") or before == "":
            return sound if sound > start else marker
        t, d = _spectral_switch(x, rate, sound, marker)
        return t if d >= _SWITCH_DB else marker
    return marker


def _segments(events: list[tuple[int, str]], audio: np.ndarray, rate: int,
              silent: np.ndarray) -> list[PhoneSegment]:
    n = len(audio)
    x = audio.astype(np.float64) / 32768.0
    bounds: list[list] = []   # [start sample, label, espeak's phoneme or "" for the lead-in]
    for sample, phone in events:
        sample = min(max(sample, 0), n)
        label = SILENCE if phone.startswith("_") else phone
        if bounds and bounds[-1][0] == sample:   # zero-length phoneme: the later one wins
            bounds.pop()
        if bounds and label == SILENCE and bounds[-1][1] == SILENCE:
            continue
        bounds.append([sample, label, phone])
    if not bounds or bounds[0][0] > 0:
        if bounds and bounds[0][1] == SILENCE:
            bounds[0][0] = 0
        else:
            bounds.insert(0, [0, SILENCE, ""])

    markers = [b[0] for b in bounds]
    for i in range(1, len(bounds)):
        prev, label = bounds[i - 1], bounds[i][1]
        if label == SILENCE:
            continue
        start = markers[i]
        # a silence run ending at the marker is this phoneme's prepause (a stop's closure); after
        # an espeak pause it cannot be told apart from the pause, so it stays silence there.  The
        # lead-in is the first phoneme's prepause.
        if prev[2] == "" or prev[1] != SILENCE:
            start = _closure_start(silent, markers[i - 1], start, whole=prev[2] == "")
        if start == markers[i] and prev[1] != SILENCE and (label not in _CONSONANTS or
                                                           (label in _LIQUIDS and prev[1] in _VOICED_STOPS)):
            before = bounds[i - 2][2] if i >= 2 else ""
            start = _onset(x, rate, silent, before, prev[1], prev[0], markers[i - 1], start)
        bounds[i][0] = start if i == 1 and start == 0 else max(start, bounds[i - 1][0] + 1)

    segs = []
    for (start, label, _), (end, _, _) in zip(bounds, bounds[1:] + [[n, "", ""]]):
        if end > start:
            segs.append(PhoneSegment(label, start / rate, end / rate))
    return segs




def synth_timed(text: str, voice: str, wpm: int | None = None,
                pitch: int | None = None) -> tuple[np.ndarray, int, list[PhoneSegment]]:
    """Say `text` with espeak-ng `voice` ("en-us", "de+m3", ...): (int16 samples shape = (n,),
    sample rate Hz (22050), phoneme segments in espeak mnemonics, seconds, contiguous from 0 to
    the end of the audio; pauses are SILENCE). wpm: speaking rate, words per minute (espeak's
    default 175); pitch: 0-100 (default 50)."""
    audio, rate, events, silent = _synth(text, voice, wpm, pitch)
    return audio, rate, _segments(events, audio, rate, silent)


class UnknownLanguage(ValueError):
    """espeak-ng has no voice for the language asked for."""


_PHONEME_SEPARATOR = ord(" ") << 8   # espeak_TextToPhonemes phonememode: ascii names, spaces between
_PHONEMES_IPA = 0x02                  # ... bit 1: IPA (UTF-8) instead of the ascii names


def text_to_phonemes(text: str, voice: str, ipa: bool = False) -> list[list[str]]:
    """espeak-ng's phoneme mnemonics (ipa=True: IPA, as UTF-8) for `text` in `voice`'s language,
    one list per clause (the points where a speaker may pause): [["h", "@", "l", "'oU"], ...].
    Raises ValueError for a voice/language espeak-ng does not have."""
    clauses: list[list[str]] = []
    with _lock:
        lib = _init()
        _set_voice(lib, voice)
        data = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        ptr = ctypes.c_void_p(ctypes.addressof(data))
        while ptr.value:
            out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _espeakCHARS_UTF8,
                                            _PHONEME_SEPARATOR | (_PHONEMES_IPA if ipa else 0))
            names = [p for p in (out or b"").decode("utf-8", "replace").split() if p]
            if names:
                clauses.append(names)
    return clauses
