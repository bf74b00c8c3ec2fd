"""Requests hostile clients send (tests/test_server_attacks.py, benchmarks/server_soak.py)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

CLIP = Path(__file__).parent.parent / "examples" / "hello.flac"            # 8.6 s of speech
WORDS = (Path(__file__).parent.parent / "examples" / "hello.txt").read_text().split()


def transcript(n_chars: int) -> str:
    words = (WORDS * (n_chars // len(" ".join(WORDS)) + 1))
    return " ".join(words)[:n_chars]


def zeros_png(width: int, height: int, bit_depth: int, colour_type: int, channels: int) -> bytes:
    """A valid PNG of all-zero pixels, built without holding its pixels: deflate blocks of 1 MiB
    of zeros, each ended by a full flush (so every block's bytes are the same), repeated."""
    raw = (1 + width * channels * bit_depth // 8) * height         # a filter byte per row, then zeros
    block = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(raw, block)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(bytes(rest)) + last.flush()
    adler = ((raw % 65521) << 16) | 1                              # adler32 of `raw` zero bytes
    idat = b"\x78\xda" + one * n + tail + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def silent_flac(seconds: float, rate: int, channels: int) -> bytes:
    """`seconds` of silence as FLAC (890 s of 2-ch 192 kHz: a few hundred KB), written in blocks."""
    buf, zeros, left = io.BytesIO(), np.zeros((1 << 20, channels), np.int16), int(seconds * rate)
    with sf.SoundFile(buf, "w", rate, channels, "PCM_16", format="FLAC") as f:
        while left:
            k = min(left, len(zeros))
            f.write(zeros[:k])
            left -= k
    return buf.getvalue()
