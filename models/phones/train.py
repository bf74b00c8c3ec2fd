"""Train the phone model on make_data.py's shards and export it to ONNX.

    OMP_NUM_THREADS=1 nice -n 10 python models/phones/train.py --data data/phones --minutes 45
    python models/phones/train.py --data data/phones --export models/phones/phones.onnx

A causal dilated convolution stack over log-mel frames (audio.mel): the output for frame j
sees frames <= j + LOOKAHEAD_FRAMES only (the net is strictly causal; its targets are delayed by
LOOKAHEAD_FRAMES), so it runs on a stream with a fixed right context of LOOKAHEAD_FRAMES * 10 ms
plus the mel window's 7.5 ms. Every causal convolution keeps the last (kernel-1)*dilation input
frames as a cache: the exported graph takes the caches as inputs and returns the new ones, so a
stream carries its state between chunks and a whole file is one chunk.

Training stops after --minutes or --steps (whichever first), checkpointing every --ckpt-every
steps to <data>/ckpt.pt and resuming from it when present; the learning rate warms up over
--warmup steps, then follows a cosine over --steps. Defaults are sized for one CPU core; the
issue's full run is `--minutes 120 --steps 12000` on twice the data (make_data.py --utts 200
--copies 3). `--init models/phones/phones.onnx` starts from an exported model's weights (and its
input normalisation) instead of from random ones (when there is no checkpoint yet).

On top of make_data.py's audio augmentation each training crop gets, in the feature domain:
SpecAugment-style masks (--freq-masks bands of up to --freq-width mel bands, and --time-masks runs
of up to --time-width frames, set to the band's mean, i.e. 0 after normalisation; the labels stay,
so the net learns to fill gaps from context) and a random spectral tilt (a linear plus quadratic
curve over the mel bands, each part up to +-TILT log10 units = +-6 dB at the band edges:
microphones and rooms colour speech differently).

--norm trains on frames equalised per utterance, causally (audio.phone_model.SpectralNorm: the
running mean speech spectrum's smooth difference from the training voices' removed), the tilt
applied before the equalisation and the masks after; the export writes its parameters into the
model's metadata, and the runtime then equalises the same way. Tried in run E (models/phones/
CARD.md): better on DEV, worse on the held-out voices, not kept.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from talkinghead.audio.mel import N_MELS, LOG_FLOOR
from talkinghead.audio.phone_model import SpectralNorm
from talkinghead.audio.phoneset import CLASSES, IGNORE

from register import register   # models/phones/register.py

DEFAULT_LOOKAHEAD = 4        # 40 ms of right context (+ the mel window's 7.5 ms); checkpoints before --lookahead
LOOKAHEAD_FRAMES = DEFAULT_LOOKAHEAD   # this run's, set once by use_lookahead()
CHANNELS = 128
KERNEL = 3
DILATIONS = (1, 2, 4, 8, 1, 2, 4, 8)
CROP = 300                   # frames per training example (3 s)
SILENCE_FEATURE = float(np.log10(LOG_FLOOR))
TILT = 0.6                   # spectral tilt augmentation: at most this many log10 units at the band edges
NORM_PRIOR = 30.0            # --norm: frames the training mean counts as heard before an utterance's first
NORM_GATE = 2.5              # --norm: frames within this many log10 units (25 dB) of the loudest are speech


class PhoneNet(nn.Module):
    """(batch, N_MELS, frames) log-mel -> (batch, frames, classes) logits, strictly causal."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1))
        self.inp = nn.Conv1d(N_MELS, CHANNELS, KERNEL)
        self.convs = nn.ModuleList(nn.Conv1d(CHANNELS, CHANNELS, KERNEL, dilation=d) for d in DILATIONS)
        self.mix = nn.ModuleList(nn.Conv1d(CHANNELS, CHANNELS, 1) for _ in DILATIONS)
        self.out = nn.Conv1d(CHANNELS, len(CLASSES), 1)
        self.dropout = nn.Dropout(0.1)

    def cache_sizes(self) -> list[tuple[int, int]]:
        """(channels, frames) of each causal convolution's cache, in order."""
        return [(N_MELS, KERNEL - 1)] + [(CHANNELS, (KERNEL - 1) * d) for d in DILATIONS]

    def zero_caches(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, c, n) for c, n in self.cache_sizes()]

    def step(self, x: torch.Tensor, caches: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One chunk: x (batch, N_MELS, frames) raw log-mel; returns logits (batch, frames, classes)
        and the new caches."""
        new = []
        h = torch.cat([caches[0], (x - self.mean) / self.std], dim=2)
        new.append(h[:, :, h.shape[2] - caches[0].shape[2]:])
        h = F.relu(self.inp(h))
        for conv, mix, cache in zip(self.convs, self.mix, caches[1:]):
            z = torch.cat([cache, h], dim=2)
            new.append(z[:, :, z.shape[2] - cache.shape[2]:])
            h = h + mix(self.dropout(F.relu(conv(z))))
        return self.out(F.relu(h)).transpose(1, 2), new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x, self.zero_caches(x.shape[0]))[0]


class Exported(nn.Module):
    """The ONNX graph: softmax posteriors and caches in, caches out."""

    def __init__(self, net: PhoneNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, *caches):
        logits, new = self.net.step(x, list(caches))
        return (torch.softmax(logits, dim=-1), *new)


# --- data -------------------------------------------------------------------------------------

def load_shards(folder: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    utts, voices = [], []
    for path in sorted(folder.glob("train_*.npz")):
        with np.load(path) as d:   # each d[key] reads the whole array again: read each once
            feats, labels, lengths, voice = d["feats"], d["labels"], d["lengths"], str(d["voice"])
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for a, b in zip(bounds[:-1], bounds[1:]):
            utts.append((feats[a:b], labels[a:b]))
            voices.append(voice)
    return utts, voices


@dataclass(frozen=True)
class FeatureAugment:
    """Feature-domain augmentation of a training crop (see the module docstring)."""
    freq_masks: int = 2
    freq_width: int = 8
    time_masks: int = 2
    time_width: int = 10
    tilt: float = TILT

    def __call__(self, x: np.ndarray, n: int, mean: np.ndarray, rng: np.random.Generator) -> None:
        """x (N_MELS, frames), the first n frames speech: changed in place."""
        self.tilt_(x, n, rng)
        self.mask_(x, n, mean, rng)

    def tilt_(self, x: np.ndarray, n: int, rng: np.random.Generator) -> None:
        if self.tilt:
            u = np.linspace(-1.0, 1.0, N_MELS, dtype=np.float32)
            a, b = rng.uniform(-self.tilt, self.tilt, 2)
            x[:, :n] += (a * u + b * (u * u - 1 / 3) * 1.5)[:, None]

    def mask_(self, x: np.ndarray, n: int, mean: np.ndarray, rng: np.random.Generator) -> None:
        for _ in range(self.freq_masks):
            w = int(rng.integers(self.freq_width + 1))
            f0 = int(rng.integers(N_MELS - w + 1))
            x[f0: f0 + w, :n] = mean[f0: f0 + w, None]
        for _ in range(self.time_masks):
            w = int(rng.integers(self.time_width + 1))
            t0 = int(rng.integers(max(1, n - w + 1)))
            x[:, t0: t0 + w] = mean[:, None]


def batches(utts, rng: np.random.Generator, batch: int, augment: FeatureAugment | None = None,
            mean: np.ndarray | None = None, norm: SpectralNorm | None = None):
    """Random crops of CROP frames (+ the lookahead's) and their labels. With `norm`, a crop's
    frames are equalised as a stream would have them: from the utterance's start (its tilt
    augmentation before, as a microphone's colouring; the masks after)."""
    while True:
        xs = np.full((batch, N_MELS, CROP + LOOKAHEAD_FRAMES), SILENCE_FEATURE, np.float32)
        ys = np.full((batch, CROP), IGNORE, np.int64)
        for i, k in enumerate(rng.integers(len(utts), size=batch)):
            f, l = utts[k]
            a = int(rng.integers(max(1, len(l) - CROP // 2))) if len(l) > CROP else 0
            n = len(l[a: a + CROP])
            ys[i, :n] = l[a: a + n]
            if norm is None:
                xs[i, :, :n] = f[a: a + n].T
                if augment is not None:
                    augment(xs[i], n, mean, rng)
                continue
            whole = padded(f, a + CROP + LOOKAHEAD_FRAMES).T.copy()   # (N_MELS, frames)
            if augment is not None:
                augment.tilt_(whole, len(l), rng)
            xs[i] = norm.apply(whole.T, norm.zero_state())[0][a: a + CROP + LOOKAHEAD_FRAMES].T
            if augment is not None:
                augment.mask_(xs[i], n, mean, rng)
        yield torch.from_numpy(xs), torch.from_numpy(ys)


def padded(f: np.ndarray, frames: int) -> np.ndarray:
    """f (n, N_MELS) followed by digital silence up to at least `frames` frames."""
    if len(f) >= frames:
        return f
    return np.concatenate([f, np.full((frames - len(f), N_MELS), SILENCE_FEATURE, np.float32)])


def speech_mean(utts) -> np.ndarray:
    """The training voices' mean log-mel spectrum over their speech frames (within NORM_GATE of
    each utterance's loudest), what --norm equalises towards."""
    total, count = np.zeros(N_MELS), 0
    for f, _ in utts:
        level = f.mean(1)
        speech = f[level > level.max() - NORM_GATE].astype(np.float64)
        total += speech.sum(0)
        count += len(speech)
    return total / max(count, 1)


def load_onnx_weights(net: "PhoneNet", path: Path) -> None:
    """Copy an exported model's initializers (named net.<parameter>) into `net`."""
    import onnx
    from onnx import numpy_helper

    state = {i.name.removeprefix("net."): torch.from_numpy(numpy_helper.to_array(i).copy())
             for i in onnx.load(str(path)).graph.initializer if i.name.startswith("net.")}
    own = net.state_dict()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        sys.exit(f"{path} does not hold this architecture's weights (--init needs a model exported by this script)")
    net.load_state_dict(state)


def frame_loss(net: PhoneNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = net(x)[:, LOOKAHEAD_FRAMES:]          # output j + R is frame j's posterior
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE,
                           label_smoothing=0.1)


@torch.no_grad()
def evaluate(net: PhoneNet, utts, norm: SpectralNorm | None = None) -> float:
    net.eval()
    right = total = 0
    for f, l in utts:
        x = padded(f, len(f) + LOOKAHEAD_FRAMES)
        if norm is not None:
            x = norm.apply(x, norm.zero_state())[0]
        pred = net(torch.from_numpy(np.ascontiguousarray(x.T, np.float32))[None])[0, LOOKAHEAD_FRAMES:].argmax(-1).numpy()
        keep = l != IGNORE
        right += int((pred[keep] == l[keep]).sum())
        total += int(keep.sum())
    net.train()
    return right / max(1, total)


def use_lookahead(ck: dict | None, asked: int | None) -> None:
    """Set this run's LOOKAHEAD_FRAMES (read by batches(), frame_loss() and evaluate()): `asked`
    (--lookahead), else the checkpoint's, else DEFAULT_LOOKAHEAD; a checkpoint trained with
    another is refused, not mixed."""
    global LOOKAHEAD_FRAMES
    had = None if ck is None else ck.get("lookahead_frames", DEFAULT_LOOKAHEAD)
    if had is not None and asked is not None and asked != had:
        sys.exit(f"the checkpoint was trained with --lookahead {had}, not {asked}: resume with that (or "
                 "without --lookahead), or start in a data folder without a checkpoint")
    LOOKAHEAD_FRAMES = next(v for v in (asked, had, DEFAULT_LOOKAHEAD) if v is not None)


def train(args) -> None:
    torch.set_num_threads(args.threads)
    utts, voices = load_shards(args.data)
    if not utts:
        sys.exit(f"no train_*.npz shards in {args.data}: run models/phones/make_data.py first")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(utts))
    n_val = max(1, len(utts) // 40)
    val = [utts[i] for i in order[:n_val]]
    trn = [utts[i] for i in order[n_val:]]
    ckpt_path = args.data / "ckpt.pt"
    ck = torch.load(ckpt_path, weights_only=False) if ckpt_path.exists() else None
    use_lookahead(ck, args.lookahead)
    norm = None
    if ck is not None and ck.get("norm_mean") is not None:
        norm = SpectralNorm(ck["norm_mean"], NORM_PRIOR, NORM_GATE)
    elif ck is None and args.norm:
        norm = SpectralNorm(speech_mean(trn[:: max(1, len(trn) // 2000)]), NORM_PRIOR, NORM_GATE)
    sample = [f for f, _ in trn[:: max(1, len(trn) // 200)]]
    if norm is not None:
        sample = [norm.apply(f, norm.zero_state())[0] for f in sample]
    sample = np.concatenate(sample).astype(np.float32)
    net = PhoneNet(sample.mean(0), sample.std(0) + 1e-3)
    if args.init and ck is None:
        load_onnx_weights(net, args.init)
        print(f"initialised from {args.init}: validation frame accuracy {evaluate(net, val[:200], norm):.3f}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step, trained_s = 0, 0.0
    if ck is not None:
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        step, trained_s = ck["step"], ck.get("trained_s", 0.0)
        rng = np.random.default_rng(step)
        print(f"resumed at step {step}", flush=True)
    print(f"{len(trn)} training utterances ({sum(len(l) for _, l in trn) / 360000:.2f} h of frames), "
          f"{len(val)} validation; {sum(p.numel() for p in net.parameters())} parameters", flush=True)
    augment = FeatureAugment(args.freq_masks, args.freq_width, args.time_masks, args.time_width, args.tilt)
    data = batches(trn, rng, args.batch, augment, net.mean.view(-1).numpy(), norm)
    budget_s = 60 * args.minutes
    t0, losses = time.time(), []
    # the schedule runs on whichever ends first, the steps or the time budget (kept across resumes)
    progress = lambda: max(step / args.steps, (trained_s + time.time() - t0) / budget_s)  # noqa: E731
    while progress() < 1.0:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress()))) * min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next(data)
        loss = frame_loss(net, x, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % args.ckpt_every == 0 or progress() >= 1.0:
            spent = time.time() - t0
            acc = evaluate(net, val[:60], norm)
            print(f"step {step} loss {np.mean(losses):.3f} val frame acc {acc:.3f} lr {lr:.2e} "
                  f"{spent / len(losses):.2f} s/step", flush=True)
            trained_s += spent
            losses, t0 = [], time.time()
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "trained_s": trained_s,
                        "norm_mean": None if norm is None else norm.mean,
                        "lookahead_frames": LOOKAHEAD_FRAMES}, tmp)
            tmp.replace(ckpt_path)
    print(f"stopped at step {step}; final validation frame accuracy {evaluate(net, val, norm):.3f}", flush=True)


def export(args) -> None:
    ck = torch.load(args.data / "ckpt.pt", weights_only=False)
    use_lookahead(ck, None)              # the checkpoint's
    net = PhoneNet(np.zeros(N_MELS), np.ones(N_MELS))
    net.load_state_dict(ck["net"])
    net.eval()
    model = Exported(net)
    x = torch.zeros(1, N_MELS, 7)
    caches = net.zero_caches(1)
    names = [f"cache{i}" for i in range(len(caches))]
    torch.onnx.export(model, (x, *caches), str(args.export), input_names=["mel", *names],
                      output_names=["posteriors", *[f"new_{n}" for n in names]],
                      dynamic_axes={"mel": {2: "frames"}, "posteriors": {1: "frames"}},
                      opset_version=17, dynamo=False)
    import onnx

    graph = onnx.load(str(args.export))
    meta = {"classes": ",".join(CLASSES), "lookahead_frames": str(LOOKAHEAD_FRAMES), "n_mels": str(N_MELS),
            "training_steps": str(ck["step"])}
    if ck.get("norm_mean") is not None:      # the runtime equalises the frames as training did
        meta.update(SpectralNorm(ck["norm_mean"], NORM_PRIOR, NORM_GATE).metadata())
    for key, value in meta.items():
        graph.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(graph, str(args.export))
    batch_dim(args.export)


def batch_dim(path: Path) -> None:
    """Make an exported model's batch dimension symbolic ("batch": every input's and output's
    first), in place, and keep the registry's SHA-256 in step when it is the registered file.
    The graph has no op that depends on the batch size, so the weights and each row's outputs are
    unchanged: the server runs the streams' pushes of a moment as one call (audio.phone_model
    PhoneModel.run_many). The export writes it this way; `--batch-dim FILE` applies it to a model
    exported before (run D, stop 26)."""
    import onnx

    graph = onnx.load(str(path))
    for value in [*graph.graph.input, *graph.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    digest = register(path)           # the registry's SHA-256 kept in step when it is the committed file
    steps = {p.key: p.value for p in graph.metadata_props}.get("training_steps")
    print(f"{path}: {path.stat().st_size} bytes, sha256 {digest}, step {steps}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/phones"))
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=1, help="steps of linear learning-rate warm-up")
    ap.add_argument("--init", type=Path, help="start from this exported model's weights (no checkpoint yet)")
    ap.add_argument("--freq-masks", type=int, default=2)
    ap.add_argument("--freq-width", type=int, default=8, help="mel bands, at most, per frequency mask")
    ap.add_argument("--time-masks", type=int, default=2)
    ap.add_argument("--time-width", type=int, default=10, help="frames, at most, per time mask")
    ap.add_argument("--lookahead", type=int,
                    help=f"frames of right context, 10 ms each (default: a resumed checkpoint's, else {DEFAULT_LOOKAHEAD}; "
                         "the issue allows 100 ms with the mel window's 7.5); the export writes the checkpoint's")
    ap.add_argument("--tilt", type=float, default=TILT, help="spectral tilt, log10 units at the band edges")
    ap.add_argument("--norm", action="store_true",
                    help="train on frames equalised per utterance (audio.phone_model.SpectralNorm), causally")
    ap.add_argument("--export", type=Path, help="export the checkpoint to this ONNX file instead of training")
    ap.add_argument("--batch-dim", type=Path, metavar="FILE",
                    help="make an exported model's batch dimension symbolic, in place (nothing else changes)")
    args = ap.parse_args()
    if args.lookahead is not None and not 0 <= args.lookahead <= 9:
        sys.exit(f"--lookahead {args.lookahead}: 0 to 9 frames (at most 100 ms with the mel window)")
    if args.batch_dim:
        batch_dim(args.batch_dim)
    else:
        export(args) if args.export else train(args)


if __name__ == "__main__":
    main()
