"""Phone posteriors from the project's own phone model (models/phones/, ONNX, onnxruntime).

`PhoneModel().posteriors(samples)` -> shape = (n_frames, len(phoneset.CLASSES)), one row per
10 ms frame on the grid of `audio.features` (frame k at (k + 0.5) * 10 ms), each row summing
to 1. `PhoneModel().stream()` gives the same rows incrementally: push audio, get the rows that
became final; the model's convolution caches and the mel frontend's samples are the stream's
state. A frame's row is final once the audio runs `lookahead_s` past the frame's end.

The model is causal with a fixed right context of `lookahead_frames` frames: its output for
frame j + lookahead_frames is frame j's posterior. After the end of the audio, frames of digital
silence push the last rows out (offline and streaming alike), so a stream cut anywhere gives
the whole file's rows.
"""

from __future__ import annotations

import threading

import numpy as np

from talkinghead import models, runtime
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.mel import LOG_FLOOR, LOOKAHEAD_SAMPLES, N_MELS, MelStream, log_mel
from talkinghead.audio.phones import HOP_SAMPLES
from talkinghead.audio.phoneset import CLASS_VISEME, CLASSES
from talkinghead.arkit import VISEME_INDEX, VISEMES
from talkinghead.errors import ModelError

SILENCE_FEATURE = float(np.log10(LOG_FLOOR))

# shape = (classes, 15): sums class posteriors into viseme posteriors
CLASS_TO_VISEME = np.zeros((len(CLASSES), len(VISEMES)), np.float32)
for _i, _c in enumerate(CLASSES):
    CLASS_TO_VISEME[_i, VISEME_INDEX[CLASS_VISEME[_c]]] = 1.0


class PhoneModel:
    """The ONNX phone model, loaded once (`shared()`); thread-safe (onnxruntime sessions are)."""

    _shared: PhoneModel | None = None
    _lock = threading.Lock()

    def __init__(self, path=None) -> None:
        file = models.model_path("phones", path)
        self.session = runtime.onnx_session(file)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("classes", "").split(",") != list(CLASSES):
            raise ModelError(f"{file} was trained for other phone classes than this talkinghead version's; "
                             "restore models/phones/phones.onnx from the same release.")
        self.lookahead_frames = int(meta["lookahead_frames"])
        self.caches = [(i.name, i.shape) for i in self.session.get_inputs()[1:]]

    @classmethod
    def shared(cls) -> PhoneModel:
        """The process's one instance of the registered model."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def lookahead_s(self) -> float:
        """Audio needed past a frame's end before its posterior is final, seconds."""
        return (self.lookahead_frames * HOP_SAMPLES + LOOKAHEAD_SAMPLES) / SAMPLE_RATE

    def zero_state(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float32) for name, shape in self.caches}

    def run(self, mel: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw model step: mel shape = (m, N_MELS) -> outputs (m, classes) and the new state."""
        if not len(mel):
            return np.zeros((0, len(CLASSES)), np.float32), state
        out = self.session.run(None, {"mel": np.ascontiguousarray(mel.T[None], np.float32), **state})
        return out[0][0], {name: arr for (name, _), arr in zip(self.caches, out[1:])}

    def posteriors(self, samples: np.ndarray) -> np.ndarray:
        """float32 mono at SAMPLE_RATE, shape = (n,) -> shape = (n // HOP_SAMPLES, classes)."""
        mel = log_mel(samples)
        tail = np.full((self.lookahead_frames, N_MELS), SILENCE_FEATURE, np.float32)
        out, _ = self.run(np.concatenate([mel, tail]), self.zero_state())
        return out[self.lookahead_frames:]

    def stream(self) -> PhoneStream:
        return PhoneStream(self)


class PhoneStream:
    """One stream's phone posteriors, chunk by chunk (not thread-safe; one per stream)."""

    def __init__(self, model: PhoneModel) -> None:
        self.model = model
        self._mel = MelStream()
        self._state = model.zero_state()
        self._skip = model.lookahead_frames   # outputs before the first frame's posterior
        self.frames = 0                       # posterior rows returned so far

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New final rows, shape = (m, classes), for frames [frames, frames + m)."""
        return self._rows(self._mel.push(samples))

    def finish(self) -> np.ndarray:
        """End of the audio: every remaining row (the stream then has the whole file's rows)."""
        tail = np.full((self.model.lookahead_frames, N_MELS), SILENCE_FEATURE, np.float32)
        return self._rows(np.concatenate([self._mel.finish(), tail]))

    def _rows(self, mel: np.ndarray) -> np.ndarray:
        out, self._state = self.model.run(mel, self._state)
        if self._skip:
            drop = min(self._skip, len(out))
            out, self._skip = out[drop:], self._skip - drop
        self.frames += len(out)
        return out


def viseme_posteriors(post: np.ndarray) -> np.ndarray:
    """shape = (n, classes) -> (n, 15) in arkit.VISEMES order."""
    return post @ CLASS_TO_VISEME
