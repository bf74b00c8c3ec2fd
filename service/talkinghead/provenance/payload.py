"""What the watermark says, as bits: a "synthetic" flag, the generator's version and an operator id.

Layout of the 48 information bits (most significant first):

    synthetic 1 | layout 3 (= 0) | version major 4, minor 4, patch 4 | operator id 32

then a CRC-16 (CCITT, init 0xFFFF) over those 6 bytes: 64 bits, which a rate-1/2 convolutional
code (constraint length 7, generators 171/133 octal, the NASA/Voyager code, zero tail)
turns into CODE_BITS = 140 bits. Soft-decision Viterbi decoding corrects scattered weak bits;
the CRC rejects what it could not correct (a wrong payload passes with probability 2^-16).

The operator id is a number 0..2^32-1 set by whoever runs the renderer; `operator_id("text")`
maps any other id to one (the first 4 bytes of its BLAKE2b hash), so `verify` can show the
number and the operator can check it against their own id.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass

import numpy as np

from talkinghead import __version__
from talkinghead.errors import OptionsError

INFO_BITS = 48
PAYLOAD_BITS = INFO_BITS + 16  # + CRC-16
LAYOUT = 0  # the bit layout above; a new layout gets a new number
MAX_OPERATOR_ID = 2**32 - 1
MAX_VERSION_PART = 15  # 4 bits each; larger parts are stored as 15 ("15 or later")
_K = 7  # constraint length
_GENERATORS = (0o171, 0o133)
CODE_BITS = 2 * (PAYLOAD_BITS + _K - 1)


@dataclass(frozen=True)
class Payload:
    """The watermark's message. `version`: "major.minor.patch" of the generator (each part
    stored in 4 bits, 0..15); `operator`: the operator-set id, 0..2^32-1 (see `operator_id`)."""

    synthetic: bool = True
    version: str = "0.0.0"
    operator: int = 0

    def to_dict(self) -> dict:
        return {"synthetic": self.synthetic, "generator": "talkinghead", "version": self.version,
                "operator_id": self.operator}


DEFAULT_PAYLOAD = Payload(synthetic=True, version=__version__, operator=0)  # what rendering embeds by default


def operator_id(value: int | str | None) -> int:
    """An operator id as the 32-bit number the watermark carries: a whole number 0..2^32-1 is
    kept as it is (also when written as decimal text); any other text is hashed (BLAKE2b,
    first 4 bytes, big-endian); None is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise OptionsError(f"the watermark id must be a number 0..{MAX_OPERATOR_ID} or text, not {value!r}")
    if isinstance(value, (int, np.integer)):
        if not 0 <= value <= MAX_OPERATOR_ID:
            raise OptionsError(f"the watermark id {value} is outside 0..{MAX_OPERATOR_ID}; use a smaller "
                               "number or text (text is hashed to 32 bits)")
        return int(value)
    text = str(value)
    if not text.strip():
        raise OptionsError("the watermark id is empty; pass a number or a name, e.g. --watermark-id studio-7")
    if re.fullmatch(r"\d+", text) and int(text) <= MAX_OPERATOR_ID:
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def pack(payload: Payload) -> np.ndarray:
    """Payload -> PAYLOAD_BITS bits (uint8 0/1, information then CRC-16)."""
    parts = [int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", payload.version)[:3]]
    major, minor, patch = [min(p, MAX_VERSION_PART) for p in parts + [0] * (3 - len(parts))]
    value = (int(payload.synthetic) << 47) | (LAYOUT << 44) | (major << 40) | (minor << 36) | (patch << 32)
    value |= operator_id(payload.operator)
    data = value.to_bytes(6, "big")
    crc = binascii.crc_hqx(data, 0xFFFF)
    return np.unpackbits(np.frombuffer(data + crc.to_bytes(2, "big"), np.uint8))


def unpack(bits: np.ndarray) -> Payload | None:
    """PAYLOAD_BITS bits -> Payload, or None when the CRC or the layout number does not match."""
    raw = np.packbits(np.asarray(bits, np.uint8)).tobytes()
    data, crc = raw[:6], int.from_bytes(raw[6:8], "big")
    if binascii.crc_hqx(data, 0xFFFF) != crc:
        return None
    value = int.from_bytes(data, "big")
    if (value >> 44) & 0b111 != LAYOUT:
        return None
    version = f"{(value >> 40) & 15}.{(value >> 36) & 15}.{(value >> 32) & 15}"
    return Payload(synthetic=bool(value >> 47), version=version, operator=value & MAX_OPERATOR_ID)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for shift in (4, 2, 1):
        x ^= x >> shift
    return x & 1


# Trellis: register = (input bit << 6) | state, state = the last 6 inputs (newest in the top bit).
_REG = np.arange(2**_K)
_OUT = np.stack([_parity(_REG & g) for g in _GENERATORS], axis=1).astype(np.uint8)  # (128, 2)


def encode(bits: np.ndarray) -> np.ndarray:
    """PAYLOAD_BITS bits -> CODE_BITS code bits (uint8 0/1), the encoder ending in state 0."""
    state, out = 0, []
    for b in list(np.asarray(bits, int)) + [0] * (_K - 1):
        reg = (b << (_K - 1)) | state
        out.extend(_OUT[reg])
        state = reg >> 1
    return np.array(out, np.uint8)


def decode(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi: `soft` (shape (CODE_BITS,)) is the evidence per code bit,
    positive for 0 and negative for 1 (e.g. a correlation); returns the most likely
    PAYLOAD_BITS bits of a path that starts and ends in state 0."""
    soft = np.asarray(soft, np.float64).reshape(-1, 2)
    n_states = 2 ** (_K - 1)
    ns = np.arange(n_states)
    bit = ns >> (_K - 2)  # the input bit that leads into each next state
    preds = np.stack([((ns << 1) & (n_states - 1)) | x for x in (0, 1)])  # (2, n_states)
    regs = (bit << (_K - 1)) | preds
    signs = 1.0 - 2.0 * _OUT[regs]  # (2, n_states, 2): +1 for code bit 0
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    choices = np.empty((soft.shape[0], n_states), np.uint8)
    for t, pair in enumerate(soft):
        cand = metric[preds] + signs @ pair
        choices[t] = np.argmax(cand, axis=0)
        metric = cand[choices[t], ns]
    state, bits = 0, []
    for t in range(soft.shape[0] - 1, -1, -1):
        bits.append(state >> (_K - 2))
        state = preds[choices[t, state], state]
    return np.array(bits[::-1][:PAYLOAD_BITS], np.uint8)
