"""Server-side cache of analysed speech: a Generate of a clip the server has analysed before (the
same audio, transcript, lip-sync mode and language; another seed, emotion or frame rate, as an
artist re-baking a take asks) animates the analysis again without recognising the speech again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import structlog

from talkinghead.motion import SpeechAnalysis

log = structlog.get_logger(__name__)

MAX_BYTES = 256 << 20       # about 7 hours of analysed speech (~10 kB a second)


def analysis_key(file: bytes, pcm16: bytes, rate: int, transcript: str, lipsync: str, language: str,
                 marks=None) -> str:
    """What an analysis depends on, hashed (SHA-256). marks: the TTS marks (a motion.line.Line) or None."""
    h = hashlib.sha256()
    for part in (file, pcm16, str(rate).encode(), transcript.encode(), lipsync.encode(), language.encode(),
                 repr(marks).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def analysis_bytes(analysis: SpeechAnalysis) -> int:
    """About how much memory an analysis holds (its arrays and segments)."""
    f = analysis.features
    arrays = (f.rms_db, f.speech, f.f0, f.f1, f.f2, f.hf_ratio, f.loudness, f.nuclei, f.nucleus_strength, f.accents)
    return int(sum(a.nbytes for a in arrays)) + 100 * len(analysis.segments)


class AnalysisCache:
    """key -> SpeechAnalysis, the least recently used going first past `max_bytes`. Thread-safe."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self._entries: OrderedDict[str, tuple[SpeechAnalysis, int]] = OrderedDict()
        self._bytes = 0                     # the entries' sizes, summed
        self._lock = threading.Lock()

    def get(self, key: str) -> SpeechAnalysis | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        log.debug("analysis.reused", seconds=round(entry[0].duration, 3))
        return entry[0]

    def put(self, key: str, analysis: SpeechAnalysis) -> None:
        size = analysis_bytes(analysis)
        with self._lock:
            old = self._entries.pop(key, None)          # two calls that both missed: the later one stays
            self._bytes += size - (old[1] if old else 0)
            self._entries[key] = (analysis, size)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                self._bytes -= self._entries.popitem(last=False)[1][1]
