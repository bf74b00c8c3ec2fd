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

Several streams' chunks can be run as one call (`push_many`, `PhoneModel.run_many`: the model's
batch dimension is symbolic), each stream getting its own call's rows. A model trained on
equalised frames (`SpectralNorm`, models/phones/train.py --norm) says so in its metadata, and
its frames are equalised here the same way, causally, the equalisation's state carried with the
convolution caches. The CPU runs the model quantised to int8 (`registered_name`;
models/phones/quantize.py), CUDA the float model as trained.
"""

from __future__ import annotations

import os
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


class SpectralNorm:
    """A causal per-utterance equalisation of the log-mel frames, for a model trained with it.

    Each frame loses the smooth (cubic over the mel bands) part of how the utterance's running
    mean speech spectrum differs from the training voices' (`mean`): a microphone's, room's or
    voice's colouring, and the level. The running mean is over the frames so far within `gate`
    log10 units of the loudest (speech, not pauses), starting from the training mean as if it had
    been heard for `prior` frames. Causal and cumulative, so a stream's frames equal the whole
    file's; the state is three numbers' worth: the loudest frame, the sum and count of the gated."""

    def __init__(self, mean: np.ndarray, prior: float, gate: float) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.prior, self.gate = float(prior), float(gate)
        u = np.linspace(-1.0, 1.0, N_MELS)
        basis = np.vander(u, 4, increasing=True)            # 1, u, u^2, u^3
        self.smooth = basis @ np.linalg.pinv(basis)          # (N_MELS, N_MELS): projection onto cubics

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> SpectralNorm | None:
        if "norm_mean" not in meta:
            return None
        return cls(np.array(meta["norm_mean"].split(","), np.float64), float(meta["norm_prior"]),
                   float(meta["norm_gate"]))

    def metadata(self) -> dict[str, str]:
        return {"norm_mean": ",".join(f"{v:.5f}" for v in self.mean), "norm_prior": f"{self.prior:g}",
                "norm_gate": f"{self.gate:g}"}

    @staticmethod
    def zero_state() -> tuple[float, np.ndarray, float]:
        return -np.inf, np.zeros(N_MELS), 0.0

    def apply(self, mel: np.ndarray, state: tuple[float, np.ndarray, float]
              ) -> tuple[np.ndarray, tuple[float, np.ndarray, float]]:
        """mel (m, N_MELS) -> the equalised frames and the new state."""
        if not len(mel):
            return mel, state
        peak0, sum0, count0 = state
        x = mel.astype(np.float64)
        level = x.mean(1)
        peak = np.maximum.accumulate(np.concatenate([[peak0], level]))[1:]
        gated = (level > peak - self.gate) & (level > SILENCE_FEATURE + 0.5)
        sums = sum0 + np.cumsum(x * gated[:, None], axis=0)
        counts = count0 + np.cumsum(gated)
        running = (self.prior * self.mean + sums) / (self.prior + counts)[:, None]
        out = x - (running - self.mean) @ self.smooth.T
        return out.astype(np.float32), (float(peak[-1]), sums[-1], float(counts[-1]))


def registered_name(path=None) -> str:
    """The registry entry this process runs: "phones_int8" (the trained model quantised to int8,
    models/phones/CARD.md "int8": about twice as fast on a CPU, the same lips) where onnxruntime
    runs on the CPU, "phones" (float32, as trained) on CUDA or where a file is named, by `path`
    or TALKINGHEAD_PHONE_MODEL (a copy of the trained model, or a candidate being measured)."""
    if path is not None or os.environ.get(models.MODELS["phones"].env_var):
        return "phones"
    return "phones" if runtime.onnx_providers()[0] == "CUDAExecutionProvider" else "phones_int8"


class PhoneModel:
    """The ONNX phone model, loaded once (`shared()`); thread-safe (onnxruntime sessions are)."""

    _shared: PhoneModel | None = None
    _lock = threading.Lock()

    def __init__(self, path=None, name: str | None = None) -> None:
        """The registered model `name` (default: `registered_name(path)`), or the file at `path`
        (checked against that entry's SHA-256)."""
        name = name or registered_name(path)
        file = models.model_path(name, path)
        self.session = runtime.onnx_session(file)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("classes", "").split(",") != list(CLASSES):
            raise ModelError(f"{file} was trained for other phone classes than this talkinghead version's; "
                             f"restore models/phones/{models.MODELS[name].filename} from the same release.")
        self.lookahead_frames = int(meta["lookahead_frames"])
        self.norm = SpectralNorm.from_metadata(meta)      # a model trained on equalised frames
        # each cache's shape for one stream (the first dimension is the batch: symbolic since stop 26)
        self.caches = [(i.name, (1, *i.shape[1:])) for i in self.session.get_inputs()[1:]]

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

    def zero_state(self) -> dict:
        state = {name: np.zeros(shape, np.float32) for name, shape in self.caches}
        if self.norm is not None:
            state["norm"] = self.norm.zero_state()
        return state

    def run(self, mel: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """Raw model step: mel shape = (m, N_MELS) -> outputs (m, classes) and the new state."""
        if not len(mel):
            return np.zeros((0, len(CLASSES)), np.float32), state
        mel, norm = self._equalised(mel, state)
        out = self.session.run(None, {"mel": np.ascontiguousarray(mel.T[None], np.float32),
                                      **{name: state[name] for name, _ in self.caches}})
        return out[0][0], self._state(out[1:], 0, norm)

    def _equalised(self, mel: np.ndarray, state: dict):
        if self.norm is None:
            return mel, None
        return self.norm.apply(mel, state["norm"])

    def _state(self, caches: list[np.ndarray], b: int, norm) -> dict:
        state = {name: arr[b:b + 1] for (name, _), arr in zip(self.caches, caches)}
        if norm is not None:
            state["norm"] = norm
        return state

    def run_many(self, mels: list[np.ndarray], states: list[dict]) -> list[tuple[np.ndarray, dict]]:
        """run() for several streams at once: the same results, row for row (the graph has no op
        that mixes its batch), from one onnxruntime call per distinct number of frames. One call
        reads the model's weights once for all: in a server, where other streams' work has
        pushed them out of the cache between two calls, a batch of 8 costs about half as much
        per stream as 8 calls (benchmarks/stream_motion_speed.py --together)."""
        out: list = [None] * len(mels)
        groups: dict[int, list[int]] = {}
        for i, mel in enumerate(mels):
            groups.setdefault(len(mel), []).append(i)
        for m, members in groups.items():
            if m == 0 or len(members) == 1:
                for i in members:
                    out[i] = self.run(mels[i], states[i])
                continue
            equalised = [self._equalised(mels[i], states[i]) for i in members]
            feed = {"mel": np.ascontiguousarray(np.stack([mel.T for mel, _ in equalised]), np.float32)}
            for name, _ in self.caches:
                feed[name] = np.concatenate([states[i][name] for i in members])
            result = self.session.run(None, feed)
            for b, i in enumerate(members):
                out[i] = result[0][b], self._state(result[1:], b, equalised[b][1])
        return out

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
        return self._take(*self.model.run(mel, self._state))

    def _take(self, out: np.ndarray, state: dict) -> np.ndarray:
        self._state = state
        if self._skip:
            drop = min(self._skip, len(out))
            out, self._skip = out[drop:], self._skip - drop
        self.frames += len(out)
        return out


def push_many(streams: list[PhoneStream], chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Each stream's push(chunk), the same rows, with one model call for the streams of one
    model whose chunks give as many mel frames (PhoneModel.run_many)."""
    mels = [s._mel.push(c) for s, c in zip(streams, chunks)]
    out: list = [None] * len(streams)
    for model in {id(s.model): s.model for s in streams}.values():
        members = [i for i, s in enumerate(streams) if s.model is model]
        results = model.run_many([mels[i] for i in members], [streams[i]._state for i in members])
        for i, result in zip(members, results):
            out[i] = streams[i]._take(*result)
    return out


def viseme_posteriors(post: np.ndarray) -> np.ndarray:
    """shape = (n, classes) -> (n, 15) in arkit.VISEMES order."""
    return post @ CLASS_TO_VISEME
