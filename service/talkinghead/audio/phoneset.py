"""The phone model's universal inventory: phone classes that look different on the lips, the maps
into them from espeak-ng's mnemonics (SAMPA-like, any language), festival's radio phones and
ARPAbet, and from them to the 15 Oculus/Meta visemes.

Classes group phones by what the mouth does, not by what the ear hears: p, b and m stay apart
(each is a closure; the model may tell them apart by voicing and nasality, and the lips need all
three), f/v is one class, rounded vowels (o, u, front rounded y/ø/œ) and open vowels (a, æ, ɔ)
are distinct, and so is silence. A diphthong is its two vowels, DIPHTHONG_SPLIT of its duration
on the first (as `motion.lips` does with ARPAbet's).
"""

from __future__ import annotations

import re

DIPHTHONG_SPLIT = 0.55        # share of a diphthong spent on its first vowel

# (class, viseme, what it covers)
_CLASSES = [
    ("sil", "sil", "silence, pauses, breath"),
    ("p", "PP", "p"), ("b", "PP", "b, β"), ("m", "PP", "m"),
    ("f", "FF", "f v ɱ"),
    ("th", "TH", "θ ð"),
    ("t", "DD", "t d ɾ(flap) ʔ-less alveolar stops"),
    ("k", "kk", "k g q c ɟ ɣ"),
    ("h", "kk", "h x χ ç ʔ"),
    ("n", "nn", "n ŋ ɲ"),
    ("l", "nn", "l ɫ ʎ"),
    ("r", "RR", "r ɾ ɹ ʁ ɚ ɝ"),
    ("s", "SS", "s z"),
    ("sh", "CH", "ʃ ʒ ɕ ʑ ʂ ʐ"),
    ("ch", "CH", "tʃ dʒ ts dz tɕ"),
    ("j", "I", "j"),
    ("w", "U", "w ɥ"),
    ("i", "I", "i ɪ ɨ"),
    ("e", "E", "e ɛ"),
    ("@", "E", "ə ɐ(reduced) ɜ ɘ"),
    ("ae", "aa", "æ"),
    ("a", "aa", "a ɑ ʌ ɐ"),
    ("O", "O", "ɔ ɒ"),
    ("o", "O", "o"),
    ("u", "U", "u ʊ ɯ"),
    ("y", "U", "y ʏ ø œ ɵ"),
]
CLASSES: tuple[str, ...] = tuple(c for c, _, _ in _CLASSES)
CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
CLASS_VISEME: dict[str, str] = {c: v for c, v, _ in _CLASSES}
IGNORE = -1   # frame label the training loss skips (a mnemonic no class fits)

BILABIAL = frozenset({"p", "b", "m"})
LABIODENTAL = frozenset({"f"})
OPEN = frozenset({"a", "ae", "O"})
ROUNDED = frozenset({"u", "o", "y", "w"})
SILENT = frozenset({"sil"})

# --- espeak-ng mnemonics (Kirshenbaum/SAMPA-like) ---------------------------------------------

_SAMPA_VOWELS = {"a": "a", "A": "a", "&": "ae", "V": "a", "@": "@", "3": "r", "E": "e", "e": "e",
                 "i": "i", "I": "i", "y": "y", "Y": "y", "W": "y", "8": "y", "o": "o", "O": "O",
                 "0": "O", "u": "u", "U": "u", "M": "u"}
_SAMPA_CONSONANTS = {
    "p": "p", "b": "b", "B": "b", "m": "m", "f": "f", "v": "f", "F": "f", "T": "th", "D": "th",
    "t": "t", "d": "t", "k": "k", "g": "k", "G": "k", "Q": "k", "q": "k", "c": "k", "J": "k",
    "x": "h", "X": "h", "h": "h", "H": "h", "C": "h", "?": "h", "!": "h",
    "n": "n", "N": "n", "l": "l", "L": "l", "r": "r", "R": "r", "*": "r",
    "s": "s", "z": "s", "S": "sh", "Z": "sh", "j": "j", "w": "w",
}
_SAMPA_SPECIAL = {
    "tS": "ch", "dZ": "ch", "ts": "ch", "dz": "ch", "n^": "n", "J^": "n", "l^": "l", "s.": "sh",
    "z.": "sh", "sx": "sh", "a#": "@", "@-": "@", "I^": "j", "U^": "w", "r-": "r", "**": "r",
    "t#": "t", "ax": "@",
}
_STRIP = re.compile(r"^[',%=]+|[:;#~\"_.\-0-9^]+$")


def _sampa_one(label: str) -> str | None:
    if label in _SAMPA_SPECIAL:
        return _SAMPA_SPECIAL[label]
    if label in _SAMPA_CONSONANTS:
        return _SAMPA_CONSONANTS[label]
    if label in _SAMPA_VOWELS:
        return _SAMPA_VOWELS[label]
    return None


def from_espeak(label: str) -> tuple[str, ...]:
    """An espeak-ng phoneme mnemonic (any language) -> one class, or two for a diphthong or a
    glide + vowel ("aI" -> ("a", "i")); () when no class fits (language switches, modifiers)."""
    if label.startswith("_") or label in ("", "#", "pau", "sil"):
        return ("sil",)
    core = re.sub(r"^[',%=]+", "", label)
    for candidate in (core, _STRIP.sub("", core), core[:2], core[:1]):
        if candidate and (c := _sampa_one(candidate)) is not None:
            rest = core[len(candidate):]
            rest = _STRIP.sub("", rest)
            second = _SAMPA_VOWELS.get(rest[:1]) if rest else None
            if second and c in CLASS_INDEX and second != c and (candidate in _SAMPA_VOWELS or c in ("j", "w")):
                return (c, second)
            return (c,)
    return ()


# --- festival radio phones / ARPAbet ----------------------------------------------------------

_ARPABET = {
    "aa": ("a",), "ae": ("ae",), "ah": ("a",), "ao": ("O",), "aw": ("a", "u"), "ax": ("@",),
    "axr": ("r",), "ay": ("a", "i"), "eh": ("e",), "er": ("r",), "ey": ("e", "i"), "ih": ("i",),
    "ix": ("i",), "iy": ("i",), "ow": ("o", "u"), "oy": ("O", "i"), "uh": ("u",), "uw": ("u",),
    "b": ("b",), "ch": ("ch",), "d": ("t",), "dh": ("th",), "dx": ("t",), "el": ("l",), "em": ("m",),
    "en": ("n",), "f": ("f",), "g": ("k",), "hh": ("h",), "jh": ("ch",), "k": ("k",), "l": ("l",),
    "m": ("m",), "n": ("n",), "ng": ("n",), "p": ("p",), "r": ("r",), "s": ("s",), "sh": ("sh",),
    "t": ("t",), "th": ("th",), "v": ("f",), "w": ("w",), "y": ("j",), "z": ("s",), "zh": ("sh",),
    "pau": ("sil",), "h#": ("sil",), "#": ("sil",), "sil": ("sil",), "brth": ("sil",),
}


def from_arpabet(label: str) -> tuple[str, ...]:
    """A festival radio phone or ARPAbet phone (any case, stress digits allowed) -> classes."""
    name = label.lower().rstrip("012")
    if name.startswith("+") or name in ("", "<sil>"):
        return ("sil",)
    return _ARPABET.get(name, ())


# festival's non-English voices write their own SAMPA-like phones; what differs from espeak-ng's
_FESTIVAL_OVERRIDES = {
    "ru": {"y": ("i",), "yy": ("i",), "ay": ("@",), "ae": ("e",), "ee": ("e",), "oo": ("o",), "uu": ("u",),
           "ii": ("i",), "aa": ("a",), "sh": ("sh",), "zh": ("sh",), "ch": ("ch",), "c": ("ch",), "j": ("j",),
           "ur": ("u",),
           "sch": ("sh",), "h": ("h",)},
    "cs": {"ch": ("h",), "s~": ("sh",), "z~": ("sh",), "c~": ("ch",), "c": ("ch",), "r~": ("r",),
           "n*": ("n",), "t*": ("t",), "d*": ("t",), "dz~": ("ch",), "dz": ("ch",), "x": ("h",)},
    "fi": {"@": ("ae",), "7": ("y",), "y": ("y",), "N": ("n",)},   # suopuhe: @ = ä, 7 = ö
    # the IIIT NSK voices' phone set (festival hindi_scm / marathi_scm / telugu_scm *_phones.scm):
    # a = the inherent vowel (schwa), th/dh = dental t/d, T/D = retroflex, ch/j = tʃ/dʒ, y = j,
    # v = ʋ (lip to teeth), ay/aw = ɛː/ɔː; every phone is listed (no fall-through to espeak-ng's)
    "nsk": {"a": ("@",), "aa": ("a",), "ih": ("i",), "iy": ("i",), "uh": ("u",), "uw": ("u",), "eh": ("e",),
            "ee": ("e",), "ay": ("ae",), "oh": ("o",), "oo": ("o",), "aw": ("O",), "f": ("f",), "k": ("k",),
            "g": ("k",), "kh": ("k",), "gh": ("k",), "ch": ("ch",), "j": ("ch",), "T": ("t",), "D": ("t",),
            "td": ("t",), "tth": ("t",), "ddh": ("t",), "th": ("t",), "dh": ("t",), "N": ("n",), "n": ("n",),
            "p": ("p",), "b": ("b",), "bh": ("b",), "m": ("m",), "y": ("j",), "r": ("r",), "R": ("r",),
            "l": ("l",), "L": ("l",), "v": ("f",), "w": ("w",), "s": ("s",), "sh": ("sh",), "zh": ("sh",),
            "h": ("h",), "ksh": ("k", "sh"), "sri": ("sh", "r"), "pau": ("sil",), "x": (), "@": ()},
}


_IPA = {"p": "p", "b": "b", "m": "m", "f": "f", "v": "f", "θ": "th", "ð": "th", "t": "t", "d": "t", "ɾ": "t",
        "k": "k", "g": "k", "ɡ": "k", "c": "k", "ɟ": "k", "h": "h", "x": "h", "ʔ": "h", "n": "n", "ŋ": "n",
        "ɲ": "n", "l": "l", "ɫ": "l", "ʎ": "l", "r": "r", "ɹ": "r", "ʁ": "r", "ɚ": "r", "ɝ": "r", "s": "s",
        "z": "s", "ʃ": "sh", "ʒ": "sh", "ɕ": "sh", "j": "j", "w": "w", "i": "i", "ɪ": "i", "ɨ": "i", "e": "e",
        "ɛ": "e", "ə": "@", "ɜ": "@", "æ": "ae", "a": "a", "ɑ": "a", "ʌ": "a", "ɐ": "a", "ɔ": "O", "ɒ": "O",
        "o": "o", "u": "u", "ʊ": "u", "y": "y", "ø": "y", "œ": "y"}


def from_ipa(label: str) -> tuple[str, ...]:
    """An IPA phone (Montreal Forced Aligner's labels: "aj", "tʲ", "ɚ", ...) -> classes."""
    core = "".join(ch for ch in label if ch in _IPA or ch in "ʧʤ")
    if not core:
        return ("sil",) if label.strip() in ("", "sil", "sp", "spn") else ()
    if core[:2] in ("tʃ", "dʒ", "ts", "dz") or core[0] in "ʧʤ":
        return ("ch",)
    first = _IPA[core[0]]
    second = _IPA.get(core[1]) if len(core) > 1 else None
    return (first, second) if second and second != first else (first,)


def classes_of(label: str, scheme: str) -> tuple[str, ...]:
    """A phone label in `scheme` -> classes: "sampa" (espeak-ng mnemonics, festival's Italian and
    Catalan), "arpabet" (festival's English radio phones, pocketsphinx), "ipa", "ru", "cs", "fi"
    (festival's Russian, Czech and Finnish voices: SAMPA-like with their own spellings), "nsk"
    (festival's Hindi, Marathi and Telugu NSK voices)."""
    if scheme == "arpabet":
        return from_arpabet(label)
    if scheme == "ipa":
        return from_ipa(label)
    overrides = _FESTIVAL_OVERRIDES.get(scheme, {})
    core = label if label in overrides else label.rstrip("0123456789:")
    if core in overrides:
        return overrides[core]
    if scheme == "nsk":
        return ()
    if scheme == "ru" and len(core) == 2 and core[0] == core[1]:   # doubled: palatalised consonant
        core = core[0]
    return from_espeak(core if scheme in _FESTIVAL_OVERRIDES else label)
