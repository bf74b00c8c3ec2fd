"""An invisible watermark in every rendered frame, and the statistical test that finds it again.

The mark is a fixed, keyed pseudo-random pattern added to the frame's pixels, periodic in both
directions: TILES_PER_SIDE tiles across the frame's shorter side, so its geometry is relative to
the frame and survives any resize. It has three components, each in a band of spatial
frequencies that survives H.264 and JPEG and each moving one colour channel only:

* luma (R, G, B moved equally): BT.709 luma, mid frequencies (periods ~13..32 px at 512 px);
* cr and cb (BT.709-luma-neutral directions (1, -0.2973, 0) and (0, -0.1010, 1)): the
  colour-difference channels, low frequencies (periods ~26..100 px at 512 px). Natural images
  hold little colour detail, so per unit of pixel error the colour components carry several
  times the signal of the luma one.

Each component is a tile of TILE x TILE canonical samples defined by its Fourier coefficients:
every frequency bin in the band has magnitude 1 and a key phase psi_k. A share of the bins
(PILOT_SHARE) carries the key phase as it is (the pilot); the rest carry psi_k + pi * c_j, the
payload's convolutional code bits c_j. Embedding precomputes the pattern once per frame size
and adds it with saturation: two uint8 passes per frame.

Detection (`detect`) averages the frames (content that moves averages out, the pattern does
not), shrinks them to the canonical grid (TILE samples per tile when uncropped) and whitens each
plane: a high-pass, then division by the local RMS, so that flat areas (where the mark
dominates) count as much as busy texture (where the content drowns it). Then, for each
candidate tile period (scale ratio r in SCALES: 0.85..2, i.e. crops of up to half the frame,
0.5 % steps, the best three refined in 0.1 % steps) it resamples the planes to TILE samples per
period, folds them modulo the tile (every pixel, partial tiles too) and takes the 2-D FFT. The
statistic is a phase-only correlation with the pilot: for every cyclic shift tau (on a
half-sample lattice),

    c(tau) = sum over pilot bins k of cos(theta_k + 2 pi <k, tau> / TILE - psi_k),

theta_k the observed phase. Under the null hypothesis (a frame this key did not mark) the key
phases are independent of the frame and of everything done to it above, so each term is
cos(uniform angle): c is a sum of M independent terms of variance 1/2, whatever the content is.
Its upper tail is bounded (Chernoff) by P(c >= t) <= min_l I0(l)^M exp(-l t); with a union bound
over every hypothesis the search can test (`n_hypotheses()`, 5.7e7), `detect` reports a
watermark only when the chance that an unmarked input reaches the observed maximum is below
FALSE_POSITIVE_RATE (1e-6). That is the design false-positive rate, for any content; the
threshold is z ~ 7.9 (z = c / sqrt(M / 2)); unmarked videos and photos score z ~ 5 to 6.

At the best hypothesis the payload bins are read (one soft value per code bit), Viterbi-decoded
and CRC-checked (see payload.py); a payload that does not check out is reported as unreadable,
the detection stands on the pilot alone.

The key is public (it is in this file): the mark declares "made by talkinghead" to anyone who
looks, it does not resist someone who sets out to remove it.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np
from scipy import optimize, special

from talkinghead.errors import MediaError
from talkinghead.provenance import payload as pl
from talkinghead.provenance.payload import DEFAULT_PAYLOAD, Payload

TILES_PER_SIDE = 2  # tile period = the frame's shorter side / 2: half the frame is one full tile
TILE = 128  # canonical samples per tile period (the detector's FFT size)
PILOT_SHARE = 0.35  # of each component's bins; the rest carry the payload
KEY = b"talkinghead/watermark/v1"  # changing it orphans every mark made before: never change
FALSE_POSITIVE_RATE = 1e-6  # design bound on P(detected | unmarked input)
SCALE_STEP = 1.005  # relative; a 0.25 % scale error at most costs little correlation
# Tile period found / the frame's own (short side / TILES_PER_SIDE): 1 for any resize, 1.11 after
# a crop to 90 %, up to 2 for a crop to half; 1.0 itself is on the grid.
SCALES = SCALE_STEP ** np.arange(math.floor(math.log(0.85, SCALE_STEP)), math.ceil(math.log(2.0, SCALE_STEP)) + 1)
REFINE_STEPS = 1.001 ** np.arange(-2, 3)  # around the best coarse scales: 0.1 % steps
REFINE_TOP = 3  # coarse scales refined
MAX_WORK_SIDE = TILES_PER_SIDE * TILE  # detection first shrinks frames to this shorter side: the canonical grid
# Detection pre-whitening, in canonical samples (the work image): high-pass sigma, the local
# energy's sigma and its floor (a share of the mean energy, so flat areas are not blown up).
WHITEN_SIGMA, WHITEN_ENERGY_SIGMA, WHITEN_FLOOR = 4.0, 3.0, 0.005
_EPS = 1e-6  # bins weaker than this share of the plane's strongest bin count as empty


@dataclass(frozen=True)
class Component:
    """One part of the pattern: an RGB direction, a band of frequencies in cycles per tile
    (radius in the tile's 2-D spectrum) and an RMS amplitude in 8-bit levels."""

    name: str
    rgb: tuple[float, float, float]
    band: tuple[float, float]
    amplitude: float


# BT.709 luma weights; the cr/cb directions move no luma (0.2126 - 0.7152 * 0.29726 = 0 and
# 0.0722 - 0.7152 * 0.10095 = 0), so the three components land on three separate planes.
LUMA = (0.2126, 0.7152, 0.0722)
COMPONENTS = (
    Component("luma", (1.0, 1.0, 1.0), (16.0, 40.0), 1.5),
    Component("cr", (1.0, -0.29726, 0.0), (5.0, 20.0), 2.0),
    Component("cb", (0.0, -0.10095, 1.0), (5.0, 20.0), 2.0),
)


@dataclass(frozen=True)
class _Key:
    """Per component: the band's bins (row, column in the rfft2 layout), their key phases, which
    are pilot bins, and for the others the code bit they carry."""

    rows: np.ndarray
    cols: np.ndarray
    phase: np.ndarray
    pilot: np.ndarray  # bool
    code_bit: np.ndarray  # int, -1 for pilot bins


def _stream(label: str, n: int) -> np.ndarray:
    """n uint32 from SHAKE-256 of KEY/label: fixed forever, unlike a library's random generator."""
    return np.frombuffer(hashlib.shake_256(KEY + b"/" + label.encode()).digest(4 * n), ">u4").astype(np.float64)


@cache
def _keys() -> tuple[_Key, ...]:
    ky = np.fft.fftfreq(TILE, 1 / TILE)[:, None]
    kx = np.fft.rfftfreq(TILE, 1 / TILE)[None, :]
    radius = np.hypot(ky, kx)
    keys, offset = [], 0
    for comp in COMPONENTS:
        lo, hi = comp.band
        # kx = 0 and the Nyquist column are their own mirror images: leave them out so every
        # bin is one independent complex coefficient.
        inside = (radius >= lo) & (radius <= hi) & (kx > 0) & (kx < TILE // 2)
        rows, cols = np.nonzero(inside)
        n = rows.size
        phase = _stream(comp.name + "/phase", n) / 2**32 * 2 * np.pi
        rank = np.argsort(np.argsort(_stream(comp.name + "/order", n), kind="stable"), kind="stable")
        n_pilot = round(PILOT_SHARE * n)
        pilot = rank < n_pilot
        code_bit = np.where(pilot, -1, (rank - n_pilot + offset) % pl.CODE_BITS)
        offset += n - n_pilot
        keys.append(_Key(rows, cols, phase, pilot, code_bit))
    return tuple(keys)


def _tile(key: _Key, code: np.ndarray) -> np.ndarray:
    """The component's canonical tile, shape (TILE, TILE) float32, unit RMS."""
    spec = np.zeros((TILE, TILE // 2 + 1), np.complex128)
    flip = np.where(key.pilot, 0.0, np.pi * code[np.maximum(key.code_bit, 0)])
    spec[key.rows, key.cols] = np.exp(1j * (key.phase + flip))
    t = np.fft.irfft2(spec, s=(TILE, TILE))
    return (t / t.std()).astype(np.float32)


def tile_period(height: int, width: int) -> float:
    """The pattern's period in pixels for a frame of this size."""
    return min(height, width) / TILES_PER_SIDE


def _field(tile: np.ndarray, height: int, width: int) -> np.ndarray:
    """The periodic pattern over a height x width frame, the tile's origin at pixel (0, 0)."""
    period = tile_period(height, width)
    ny, nx = math.ceil(height / period) + 1, math.ceil(width / period) + 1
    big = np.tile(tile, (ny, nx))
    size = (round(nx * period), round(ny * period))
    interp = cv2.INTER_CUBIC if period >= TILE else cv2.INTER_AREA
    return cv2.resize(big, size, interpolation=interp)[:height, :width]


class Watermarker:
    """Marks frames with one payload. The pattern for each frame size is computed once (a few
    ms) and kept, for the last `cache_sizes` sizes; `mark` is then two saturating uint8 passes.
    Thread-safe: one instance can serve every stream of a server."""

    def __init__(self, payload: Payload, cache_sizes: int = 8) -> None:
        self.payload = payload
        code = pl.encode(pl.pack(payload))
        self._tiles = [_tile(key, code) for key in _keys()]  # per payload; only their resampling is per size
        self._patterns: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_sizes = cache_sizes
        self._lock = threading.Lock()

    def offsets(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(add, subtract): uint8 arrays, shape (height, width, 3), the rounded pattern's
        positive and negative parts."""
        with self._lock:
            hit = self._patterns.get((height, width))
            if hit is not None:
                self._patterns.move_to_end((height, width))
                return hit
        total = np.zeros((height, width, 3), np.float32)
        for comp, tile in zip(COMPONENTS, self._tiles):
            total += _field(tile, height, width)[..., None] * (
                comp.amplitude * np.asarray(comp.rgb, np.float32))
        off = np.rint(total).astype(np.int16)
        pair = (np.clip(off, 0, 255).astype(np.uint8), np.clip(-off, 0, 255).astype(np.uint8))
        with self._lock:
            self._patterns[(height, width)] = pair
            while len(self._patterns) > self._cache_sizes:
                self._patterns.popitem(last=False)
        return pair

    def mark(self, frame: np.ndarray) -> np.ndarray:
        """A marked copy of `frame` (RGB uint8, shape (H, W, 3)); the input is not changed."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise MediaError(f"Only RGB uint8 frames of shape (height, width, 3) can be watermarked, not {desc}.")
        add, sub = self.offsets(frame.shape[0], frame.shape[1])
        out = cv2.add(np.ascontiguousarray(frame), add)
        return cv2.subtract(out, sub, dst=out)

    __call__ = mark


@lru_cache(maxsize=16)
def watermarker(payload: Payload) -> Watermarker:
    """The shared Watermarker for `payload` (patterns are cached per payload and frame size)."""
    return Watermarker(payload)


def mark(frame: np.ndarray, payload: Payload = DEFAULT_PAYLOAD) -> np.ndarray:
    """`frame` (RGB uint8, (H, W, 3)) with the watermark carrying `payload` added: the call a
    server makes per streamed frame (the pattern is cached per payload and frame size)."""
    return watermarker(payload).mark(frame)


# --- detection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """What `detect` found. `detected`: the pilot's correlation passed the threshold;
    `p_value`: an upper bound on the chance that an unmarked input scores this high
    (all hypotheses counted), `confidence` = 1 - p_value; `z`: the best correlation in
    standard deviations of the null (about 5 is typical of unmarked input, the threshold is
    `z_threshold`); `scale`: the tile period found relative to the frame's (1 = not cropped
    or padded); `shift`: its offset in pixels (x, y); `payload`: the decoded message, or None
    when the CRC did not check out; `payload_z`: the payload bits' agreement with the
    decoded codeword (in null standard deviations)."""

    detected: bool
    confidence: float
    p_value: float
    z: float
    z_threshold: float
    scale: float
    shift: tuple[float, float]
    payload: Payload | None
    payload_z: float
    frames: int

    def to_dict(self) -> dict:
        return {
            "detected": self.detected,
            "confidence": self.confidence,
            "p_value": self.p_value,
            "z": round(self.z, 2),
            "z_threshold": round(self.z_threshold, 2),
            "false_positive_rate": FALSE_POSITIVE_RATE,
            "scale": round(self.scale, 4) if self.detected else None,  # where the best guess was: noise if not
            "shift_px": [round(v, 1) for v in self.shift] if self.detected else None,
            "payload": None if self.payload is None else self.payload.to_dict(),
            "payload_valid": self.payload is not None,
            "payload_z": round(self.payload_z, 2),
            "frames": self.frames,
        }


def n_hypotheses() -> int:
    """How many (scale, shift) hypotheses a detection can test: the union bound's factor. The
    coarse grid's scales, each with REFINE_STEPS finer ones around it, times every shift on a
    half-sample lattice."""
    return len(SCALES) * len(REFINE_STEPS) * (2 * TILE) ** 2


def log_tail_bound(t: float, m: int) -> float:
    """log of the Chernoff bound on P(sum of m cos(uniform angle) >= t): min over l >= 0 of
    m log I0(l) - l t (0 when t <= 0)."""
    if m <= 0:
        return 0.0 if t <= 0 else -math.inf
    if t <= 0:
        return 0.0
    if t >= m:
        return -math.inf
    # d/dl: m I1(l)/I0(l) = t; I1/I0 rises from 0 towards 1, so one root (capped far out).
    def slope(x: float) -> float:
        return m * special.i1e(x) / special.i0e(x) - t

    lam = 1e6 if slope(1e6) < 0 else optimize.brentq(slope, 1e-12, 1e6)
    return m * (math.log(special.i0e(lam)) + lam) - lam * t


@lru_cache(maxsize=256)
def threshold(m: int, rate: float = FALSE_POSITIVE_RATE) -> float:
    """The correlation a sum of `m` pilot terms must reach so that, over n_hypotheses() tests,
    an unmarked input passes with probability <= rate."""
    target = math.log(rate / n_hypotheses())
    return optimize.brentq(lambda t: log_tail_bound(t, m) - target, 1e-9, 0.999 * m)


def planes(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W): BT.709 luma, R - luma, B - luma (the planes
    the three components live on)."""
    f = frame.astype(np.float32)
    y = f @ np.asarray(LUMA, np.float32)
    return np.stack([y, f[..., 0] - y, f[..., 2] - y])


class Accumulator:
    """Running mean of frames' planes, so a video is read once, frame by frame. Frames are
    first shrunk to a shorter side of `max_side` (the pattern's geometry is relative to the
    frame, so this changes nothing but the cost); frames of another size than the first are
    skipped and counted in `skipped`."""

    def __init__(self, max_side: int = MAX_WORK_SIDE) -> None:
        self.max_side = max_side
        self.sum: np.ndarray | None = None
        self.n = 0
        self.skipped = 0
        self.pixel_scale = 1.0  # input pixels per accumulated pixel

    def add(self, frame: np.ndarray) -> None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise MediaError(f"Frames to check must be RGB uint8 of shape (height, width, 3), not {desc}.")
        h, w = frame.shape[:2]
        if min(h, w) > self.max_side:
            f = self.max_side / min(h, w)
            frame = cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
            self.pixel_scale = 1 / f
        p = planes(frame)
        if self.sum is None:
            self.sum = p.astype(np.float64)
        elif p.shape == self.sum.shape:
            self.sum += p
        else:
            self.skipped += 1
            return
        self.n += 1

    def mean(self) -> np.ndarray:
        if self.sum is None:
            raise MediaError("There are no frames to look for a watermark in; pass at least one frame.")
        return (self.sum / self.n).astype(np.float32)


def detect(frames: Iterable[np.ndarray] | np.ndarray) -> Detection:
    """Look for the watermark in `frames` (RGB uint8, each (H, W, 3), all one size: a video's
    frames, or one image as a 3-D array). Deterministic; about 0.5 s on one core."""
    acc = Accumulator()
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = [frames]
    for f in frames:
        acc.add(f)
    return detect_planes(acc.mean(), acc.n, acc.pixel_scale)


def detect_planes(mean_planes: np.ndarray, n_frames: int = 1, pixel_scale: float = 1.0) -> Detection:
    """`detect` on the frames' mean planes (float32 (3, H, W) as `planes` makes them);
    `pixel_scale`: input pixels per plane pixel (for the reported shift)."""
    _, h, w = mean_planes.shape
    shrink = min(1.0, MAX_WORK_SIDE / min(h, w))
    work = [_whiten(cv2.resize(p, (max(1, round(w * shrink)), max(1, round(h * shrink))),
                               interpolation=cv2.INTER_AREA) if shrink < 1 else p) for p in mean_planes]
    period = tile_period(h, w) * shrink  # in work pixels
    coarse = sorted((_best_shift(work, period * r, r) for r in SCALES), key=lambda hyp: hyp.logp)
    best = None
    for hyp in coarse[:REFINE_TOP]:
        for step in REFINE_STEPS:
            fine = _refine(_best_shift(work, period * hyp.scale * step, hyp.scale * step))
            if best is None or fine.logp < best.logp:
                best = fine
    if best is None or best.m == 0:
        return Detection(False, 0.0, 1.0, 0.0, 0.0, 1.0, (0.0, 0.0), None, 0.0, n_frames)
    p_value = min(1.0, math.exp(min(0.0, best.logp + math.log(n_hypotheses()))))
    detected = best.c >= threshold(best.m)
    decoded, payload_z = _read_payload(best.spectra, best.ty, best.tx) if detected else (None, 0.0)
    px = tile_period(h, w) * best.scale / TILE * pixel_scale  # canonical sample -> input pixel
    return Detection(detected, 1.0 - p_value, p_value, best.c / math.sqrt(best.m / 2),
                     threshold(best.m) / math.sqrt(best.m / 2), best.scale, (best.tx * px, best.ty * px),
                     decoded, payload_z, n_frames)


def _whiten(plane: np.ndarray) -> np.ndarray:
    """High-pass the plane and divide it by its local RMS: busy texture (where the content
    drowns the mark) and flat areas (where the mark dominates) then weigh alike. It does not
    depend on the key, so the null distribution stays exact."""
    p = plane - cv2.GaussianBlur(plane, (0, 0), WHITEN_SIGMA)
    energy = cv2.GaussianBlur(p * p, (0, 0), WHITEN_ENERGY_SIGMA)
    return p / np.sqrt(energy + WHITEN_FLOOR * float(energy.mean()) + 1e-12)


@dataclass
class _Hypothesis:
    """One tile period (`scale`) with its best shift (ty, tx) in canonical samples: pilot
    correlation `c` over `m` live bins, log of its tail bound `logp`, and the folded spectra."""

    scale: float
    ty: float
    tx: float
    c: float
    m: int
    logp: float
    spectra: list[np.ndarray]


def _best_shift(work: list[np.ndarray], period: float, scale: float) -> _Hypothesis:
    """Fold `work` at tile `period` (work pixels) and find the pilot's best whole-sample shift."""
    s = TILE / period
    size = (max(1, round(work[0].shape[1] * s)), max(1, round(work[0].shape[0] * s)))
    spectra = [_folded_spectrum(p, size, s) for p in work]
    x, m = np.zeros((TILE, TILE // 2 + 1), np.complex128), 0
    for spec, key in zip(spectra, _keys()):
        u, live = _pilot_bins(spec, key)
        m += int(live.sum())
        x[key.rows[live], key.cols[live]] += u[live]  # the components' bands overlap: add, not set
    corr = np.fft.irfft2(x, s=(TILE, TILE)) * (TILE * TILE / 2)  # = the sum of the cos terms, per shift
    ty, tx = divmod(int(np.argmax(corr)), TILE)
    c_max = float(corr[ty, tx])
    return _Hypothesis(scale, ty, tx, c_max, m, log_tail_bound(c_max, m), spectra)


def _pilot_bins(spec: np.ndarray, key: _Key) -> tuple[np.ndarray, np.ndarray]:
    """The pilot terms' unit phasors exp(i (theta_k - psi_k)) for all band bins (zero where not
    live) and the mask of live pilot bins."""
    u = spec[key.rows, key.cols]
    mag = np.abs(u)
    live = key.pilot & (mag > _EPS * max(float(mag.max(initial=0.0)), 1e-30))
    phasor = np.where(live, u / np.maximum(mag, 1e-30) * np.exp(-1j * key.phase), 0)
    return phasor, live


def _refine(hyp: _Hypothesis) -> _Hypothesis:
    """The best half-sample shift around `hyp`'s whole-sample one (sums over the bins)."""
    terms = [(key, *_pilot_bins(spec, key)) for spec, key in zip(hyp.spectra, _keys())]
    best = hyp
    for dy in (-0.5, 0.0, 0.5):
        for dx in (-0.5, 0.0, 0.5):
            ty, tx = hyp.ty + dy, hyp.tx + dx
            c = sum(float(np.sum(np.real(u * _ramp(key, ty, tx))[live])) for key, u, live in terms)
            if c > best.c:
                best = _Hypothesis(hyp.scale, ty, tx, c, hyp.m, log_tail_bound(c, hyp.m), hyp.spectra)
    return best


def _ramp(key: _Key, ty: float, tx: float) -> np.ndarray:
    """exp(2 pi i <k, tau> / TILE) for the key's bins: the phase of a shift by tau samples."""
    ky = np.where(key.rows > TILE // 2, key.rows - TILE, key.rows)
    return np.exp(2j * np.pi * (ky * ty + key.cols * tx) / TILE)


def _folded_spectrum(plane: np.ndarray, size: tuple[int, int], s: float) -> np.ndarray:
    """Resample `plane` to `size` (TILE samples per tile period), fold it modulo TILE (every
    pixel used, partial tiles too) and return the rfft2, shape (TILE, TILE//2 + 1)."""
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    p = cv2.resize(plane, size, interpolation=interp)
    p = p - p.mean()  # the zero padding below should not add a step
    ny, nx = -(-p.shape[0] // TILE), -(-p.shape[1] // TILE)
    padded = np.zeros((ny * TILE, nx * TILE), np.float32)
    padded[: p.shape[0], : p.shape[1]] = p
    return np.fft.rfft2(padded.reshape(ny, TILE, nx, TILE).sum(axis=(0, 2)))


def _read_payload(spectra: list[np.ndarray], ty: float, tx: float) -> tuple[Payload | None, float]:
    """Soft code bits from the payload bins at shift (ty, tx), Viterbi, CRC: (payload or None,
    agreement of the bins with the decoded codeword in null standard deviations)."""
    soft = np.zeros(pl.CODE_BITS)
    n = 0
    for spec, key in zip(spectra, _keys()):
        data = ~key.pilot
        u = spec[key.rows, key.cols]
        terms = np.real(u / np.maximum(np.abs(u), 1e-30) * np.exp(-1j * key.phase) * _ramp(key, ty, tx))[data]
        np.add.at(soft, key.code_bit[data], terms)
        n += int(data.sum())
    bits = pl.decode(soft)
    agreement = float(np.dot(soft, 1.0 - 2.0 * pl.encode(bits))) / math.sqrt(max(n, 1) / 2)
    return pl.unpack(bits), agreement
