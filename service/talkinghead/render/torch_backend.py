"""The torch renderer: the CPU renderer's warp, batched, on a GPU (or torch's CPU).

Per batch of B frames:
1. each frame's landmark displacement with the CPU renderer's numpy (478 x 3, tiny), uploaded;
2. on the device, for the whole batch: the spread over the grid, the head turn (the CPU
   renderer's own arithmetic, `cpu.turn_points`), the forward map;
3. the Newton inversion (`cpu.newton_step`, all INVERT_ITERATIONS steps on every point: on a
   GPU a step costs the same for all), the upsampling of the backward displacement as
   cv2.resize does it, and one bilinear sampling of the portrait at 1/32-pixel coordinates;
4. download, then the CPU renderer's `composite_layers` per frame (small ROIs, numpy + OpenCV).

The output equals the CPU renderer's within a few levels on a few pixels (tests/test_render_torch.py
measures it, and says where the differences come from).

This module imports torch: import it only once `device.pick_backend` chose torch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import astuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.face.rig import Rig
from talkinghead.render.cpu import (
    INVERT_ITERATIONS,
    SPECKLE_PX,
    SPECKLE_REACH,
    HeadTurn,
    composite_layers,
    folds,
    head_turn,
    landmark_displacement,
    lips_grid,
    newton_step,
    turn_points,
)
from talkinghead.track import FaceParams


def _upload(a: np.ndarray, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    # np.array copies: the rig's arrays are read-only, and torch wants writable memory.
    return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)


@functools.cache
def _cv2_snaps(dtype: type, channels: int) -> bool:
    """Whether cv2.remap (INTER_LINEAR) snaps its coordinates to 1/32 pixel for images of this
    type: all of them before OpenCV 4.11 (INTER_BITS = 5 fixed point); since then the 2-channel
    float path still does, the 1-, 3- and 4-channel ones interpolate exactly. Asked of cv2
    itself (one pixel at x = 0.51), since the CPU renderer's output depends on it: where the
    Newton inversion does not converge (the fold of a turned head) that 1/64 pixel decides
    which of the folded layers a pixel shows."""
    image = np.zeros((1, 2, channels), dtype)
    image[0, 1] = 200
    at = np.array([[0.51]], np.float32)
    out = cv2.remap(image, at, np.zeros_like(at), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return abs(float(np.ravel(out)[0]) - 102.0) > 0.5          # snapped: 100


def _like_cv2(at: torch.Tensor, dtype: type, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (..., 2) -> x, y as cv2.remap uses them for such an image."""
    if _cv2_snaps(dtype, channels):
        at = torch.round(at * 32) / 32                  # cvRound: to nearest, ties to even, as torch
    return at[..., 0], at[..., 1]


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling with cv2.remap's conventions (pixel centres at integer coordinates,
    BORDER_REPLICATE: clamping the coordinate to the edge pixels' centres is the same thing
    for bilinear). image: shape = (N, C, h, w); x, y: shape = (N, H, W) pixels.
    Returns shape = (N, C, H, W)."""
    h, w = image.shape[-2:]
    grid = torch.stack([x * (2 / (w - 1)) - 1, y * (2 / (h - 1)) - 1], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class TorchRenderer:
    """One rig's arrays, uploaded once to `device` ("cuda", "cpu", a torch.device); then
    `render_batch(params)` renders any number of frames per call."""

    def __init__(self, rig: Rig, device: str | torch.device = "cpu") -> None:
        self.rig = rig
        self.device = dev = torch.device(device)
        w, h = rig.size
        gh, gw = rig.grid_xy.shape[:2]
        # The portrait, (1, 3, H, W) float32 0..255.
        self.image = _upload(rig.image, dev).permute(2, 0, 1)[None].contiguous()
        self.grid = _upload(rig.grid_xy, dev)                                    # (gh, gw, 2)
        self.points = torch.cat([self.grid.reshape(-1, 2), _upload(rig.grid_z, dev)[:, None]], 1)   # (n, 3)
        self.head_mask = _upload(rig.head_mask, dev)[:, None]                    # (n, 1)
        self.pivot = _upload(rig.pivot, dev)                                     # (3,)
        # The spread operator in ELL form: each grid point's (at most 4) landmarks and weights,
        # shape = (n, k). A gather and k multiply-adds: fast on any device, no sparse kernels, and
        # summed in the CPU renderer's order (scipy adds a row's entries one by one).
        spread = rig.spread.tocsr()
        counts = np.diff(spread.indptr)
        k = max(int(counts.max()), 1)
        rows = np.repeat(np.arange(len(counts)), counts)
        slot = np.arange(spread.nnz) - np.repeat(spread.indptr[:-1], counts)
        cols = np.zeros((len(counts), k), np.int64)
        vals = np.zeros((len(counts), k), np.float32)
        cols[rows, slot], vals[rows, slot] = spread.indices, spread.data
        self.spread_cols = torch.from_numpy(cols).to(dev)
        self.spread_vals = torch.from_numpy(vals).to(dev)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=dev),
                                torch.arange(w, dtype=torch.float32, device=dev), indexing="ij")
        self.pixels = torch.stack([xs, ys], -1)                                  # (H, W, 2)
        self.cell = rig.cell
        self.shape = (gh, gw)
        self.lips = torch.from_numpy(lips_grid(rig)).to(dev)                   # (gh, gw) bool

    @torch.inference_mode()
    def render_batch(self, params: Sequence[FaceParams], composite: bool = True) -> np.ndarray:
        """Frames for `params`, shape = (B, H, W, 3) uint8 RGB; `composite=False` leaves out the
        eye and mouth layers (the warp alone)."""
        return render_across([(self, p) for p in params], composite, size=self.rig.size)

    @torch.inference_mode()
    def backward_maps(self, params: Sequence[FaceParams], disps: Sequence[np.ndarray]) -> torch.Tensor:
        """Per-pixel source coordinates, shape = (B, H, W, 2) float32 pixels (x, y): what
        `cpu.backward_map` gives per frame. `disps`: each frame's `landmark_displacement`."""
        return _backward_maps([self] * len(params), params, disps)


def _invert(r: TorchRenderer, fwd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`cpu.invert_grid` for a batch: fwd shape = (B, gh, gw, 2) -> (src, the same shape;
    where the map folds, shape = (B, gh, gw) bool)."""
    c = float(r.cell)
    # np.gradient's: central differences inside, one-sided at the edges.
    def diff(f: torch.Tensor, dim: int) -> torch.Tensor:
        n = f.shape[dim]
        inner = (f.narrow(dim, 2, n - 2) - f.narrow(dim, 0, n - 2)) / (2.0 * c)
        first = (f.narrow(dim, 1, 1) - f.narrow(dim, 0, 1)) / c
        last = (f.narrow(dim, n - 1, 1) - f.narrow(dim, n - 2, 1)) / c
        return torch.cat([first, inner, last], dim)

    gy, gx = diff(fwd, 1), diff(fwd, 2)
    jac = torch.stack([gx[..., 0], gy[..., 0], gx[..., 1], gy[..., 1]], -1)
    fwd_c = fwd.permute(0, 3, 1, 2).contiguous()                              # (B, 2, gh, gw)
    jac_c = jac.permute(0, 3, 1, 2).contiguous()                              # (B, 4, gh, gw)
    folded = folds(jac)          # the determinant is the same with the off-diagonal terms swapped
    src = r.grid - fwd
    for _ in range(INVERT_ITERATIONS):
        at = (src + 0.5) / c - 0.5
        d = _sample(fwd_c, *_like_cv2(at, np.float32, 4)).permute(0, 2, 3, 1)    # the CPU's 4 channels
        j = _sample(jac_c, *_like_cv2(at, np.float32, 4)).permute(0, 2, 3, 1)
        step = newton_step(src[..., 0] + d[..., 0] - r.grid[..., 0], src[..., 1] + d[..., 1] - r.grid[..., 1],
                           j[..., 0], j[..., 1], j[..., 2], j[..., 3], torch)
        src = src - torch.stack(step, -1)
    return src, folded


def _median(back: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.medianBlur(k) of each channel, borders replicated: shape = (B, C, h, w)."""
    b, c, h, w = back.shape
    padded = F.pad(back, (k // 2,) * 4, mode="replicate")
    patches = F.unfold(padded.reshape(b * c, 1, h + k - 1, w + k - 1), k)         # (B*C, k*k, h*w)
    return patches.median(1).values.reshape(b, c, h, w)


def _despeckle(back: torch.Tensor, folded: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """`cpu.despeckle` for a batch: back shape = (B, 2, gh, gw), folded (B, gh, gw) bool, lips
    (B or 1, gh, gw) bool; the same out. The second pass only for frames whose first mended
    something, as on the CPU."""
    k = 2 * SPECKLE_REACH + 1
    near = (F.max_pool2d(folded[:, None].float(), k, stride=1, padding=SPECKLE_REACH) > 0) & ~lips[:, None]

    def speckles(med):
        return ((back - med).abs().amax(1, keepdim=True) > SPECKLE_PX) & near

    med = _median(back, 3)
    bad = speckles(med)
    back = torch.where(bad, med, back)
    mended = bad.flatten(1).any(1)[:, None, None, None]
    med = _median(back, 3)
    return torch.where(speckles(med) & mended, med, back)


def _stacked(renderers: Sequence[TorchRenderer], name: str) -> torch.Tensor:
    """Each frame's rig tensor `name`, stacked: shape = (B, ...); (1, ...) when every frame has
    the same rig (broadcast, not copied)."""
    first = renderers[0]
    if all(r is first for r in renderers):
        return getattr(first, name)[None]
    unique = list({id(r): r for r in renderers}.values())
    tensors = [getattr(r, name) for r in unique]
    if name.startswith("spread_"):                 # ELL widths may differ: pad with weight-0 slots
        k = max(t.shape[1] for t in tensors)
        tensors = [F.pad(t, (0, k - t.shape[1])) for t in tensors]
    index = {id(r): i for i, r in enumerate(unique)}
    which = torch.tensor([index[id(r)] for r in renderers], device=first.device)
    return torch.stack(tensors)[which]


def _backward_maps(renderers: Sequence[TorchRenderer], params: Sequence[FaceParams],
                   disps: Sequence[np.ndarray]) -> torch.Tensor:
    """Per-pixel source coordinates of each frame (its own rig's), shape = (B, H, W, 2)."""
    r0 = renderers[0]
    gh, gw = r0.shape
    w, h = r0.rig.size
    b = len(params)
    disp = torch.from_numpy(np.stack(disps)).to(r0.device)                  # (B, 478, 3)
    cols, vals = _stacked(renderers, "spread_cols"), _stacked(renderers, "spread_vals")   # (B or 1, n, k)
    lookup = torch.arange(b, device=r0.device)[:, None]
    expr = vals[..., 0, None] * disp[lookup, cols[..., 0]]
    for k in range(1, cols.shape[-1]):
        expr = expr + vals[..., k, None] * disp[lookup, cols[..., k]]
    moved = _stacked(renderers, "points") + expr                           # (B, n, 3)
    pivot = _stacked(renderers, "pivot")[:, None]                          # (B or 1, 1, 3)
    q = moved - pivot
    x, y = turn_points(q[..., 0], q[..., 1], q[..., 2], _turns(renderers, params), (pivot[..., 0], pivot[..., 1]))
    turned = torch.stack([x, y], -1)
    fwd = expr[..., :2] + _stacked(renderers, "head_mask") * (turned - moved[..., :2])
    src, folded = _invert(r0, fwd.reshape(b, gh, gw, 2))
    back = _despeckle((src - r0.grid).permute(0, 3, 1, 2), folded, _stacked(renderers, "lips"))
    # cv2.resize INTER_LINEAR: half-pixel centres, the edge rows and columns replicated.
    full = F.interpolate(back, scale_factor=r0.cell, mode="bilinear", align_corners=False)
    return r0.pixels + full[:, :, :h, :w].permute(0, 2, 3, 1)


def _turns(renderers: Sequence[TorchRenderer], params: Sequence[FaceParams]) -> HeadTurn:
    """The frames' HeadTurns (each in its own rig's pixels) as one, each field shape = (B, 1)."""
    turns = np.array([astuple(head_turn(r.rig, p.head)) for r, p in zip(renderers, params)], np.float32)
    cols = torch.from_numpy(turns).to(renderers[0].device)[:, :, None]
    return HeadTurn(*cols.unbind(1))


@torch.inference_mode()
def render_across(frames: Sequence[tuple[TorchRenderer, FaceParams]], composite: bool = True,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Frames of any rigs of one size on one device — several streams' frames in one batch —
    each (renderer, params), shape = (B, H, W, 3) uint8 RGB: each the frame its renderer's
    `render_batch` makes. `size` (w, h): the frame size when `frames` may be empty."""
    if not frames:
        w, h = size
        return np.empty((0, h, w, 3), np.uint8)
    renderers = [r for r, _ in frames]
    params = [p for _, p in frames]
    r0 = renderers[0]
    w, h = r0.rig.size
    bad = {r.rig.size for r in renderers} - {(w, h)} or {str(r.device) for r in renderers} - {str(r0.device)}
    if bad:
        raise ValueError(f"one batch holds frames of one size on one device, not also {sorted(map(str, bad))}")
    disps = [landmark_displacement(r.rig, np.asarray(p.blendshapes, np.float32)) for r, p in frames]
    maps = _backward_maps(renderers, params, disps)
    b = len(params)
    if all(r is r0 for r in renderers):
        # One sampling of the portrait for the whole batch: its frames stacked as one tall
        # grid (so the photo is not copied B times).
        # Snapped to 1/32 pixel as the CPU renderer's fixed-point maps are (cv2.convertMaps).
        at = torch.round(maps.reshape(1, b * h, w, 2) * 32) / 32
        warped = _sample(r0.image, at[..., 0], at[..., 1]).reshape(3, b, h, w).permute(1, 0, 2, 3)
    else:
        at = torch.round(maps * 32) / 32
        warped = _sample(_stacked(renderers, "image")[:, 0], at[..., 0], at[..., 1])    # (B, 3, h, w)
    out = warped.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    if composite:
        for frame, r, p, disp in zip(out, renderers, params, disps):
            composite_layers(frame, r.rig, p, disp)
    return out
