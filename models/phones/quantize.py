"""The phone model in int8 for the CPU: onnxruntime's static quantisation of an exported model.

    python models/phones/quantize.py --model models/phones/phones.onnx --data data/base data/kokoro \
        --out models/phones/phones.int8.onnx

The weights become int8, one scale per output channel; the activations uint8, one scale per
tensor, their ranges calibrated (--calibration: by default the 99.999th percentile of each one's
magnitudes) on frames of the model's own TRAINING shards (make_data.py's), never on the DEV or
held-out voices: from each shard --utts utterances drawn with --seed, pushed through the fp32
model in 100 ms chunks (10 frames, a stream's usual push) from the zero state, as a stream runs
it. Each convolution cache a stream carries between chunks takes the scale of the activation it
is cut from (`share_cache_scales`: a stream's rows stay the whole file's, to the bit), and the
Softmax stays in float (--exclude). The graph is the QDQ form (QuantizeLinear / DequantizeLinear
around each op), which onnxruntime's CPU provider fuses into its int8 kernels (QLinearConv).
Deterministic: the same shards give the same bytes.

Why: a stream pushes 10 frames at a time, and the fp32 model's 2.2 MB of weights are read for
every call; int8 weights are a quarter of that and run on the CPU's 8-bit dot products. The
outputs change a little (posteriors within a few hundredths): the model card's "int8" section
gives the accuracy measured before it was adopted, and its rule.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from register import register   # models/phones/register.py

CHUNK_FRAMES = 10
EXCLUDE = ("/Softmax",)      # left in float: posteriors not rounded to steps of 1/255
CALIBRATION = "percentile"   # the registered file's (models/phones/CARD.md "int8": min/max failed DEV)


def calibration_feeds(model: Path, shards: list[Path], utts: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Each calibration call's inputs: utterances of the shards streamed in CHUNK_FRAMES chunks
    (equalised first, as the runtime does, when the model was trained with --norm)."""
    import onnxruntime as ort
    from tqdm import tqdm

    from talkinghead.audio.phone_model import SpectralNorm

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    norm = SpectralNorm.from_metadata(session.get_modelmeta().custom_metadata_map)
    rng = np.random.default_rng(seed)
    feeds = []
    for path in tqdm(shards, desc="calibration chunks", unit="shard"):
        with np.load(path) as shard:
            feats, lengths = shard["feats"], shard["lengths"]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for u in sorted(rng.choice(len(lengths), min(utts, len(lengths)), replace=False)):
            mel = feats[starts[u]: starts[u + 1]].astype(np.float32)
            if norm is not None:   # causal and cumulative: the whole utterance at once = chunk by chunk
                mel, _ = norm.apply(mel, norm.zero_state())
            state = {i.name: np.zeros((1, *i.shape[1:]), np.float32) for i in inputs[1:]}
            for k in range(0, len(mel) - CHUNK_FRAMES + 1, CHUNK_FRAMES):
                feed = {"mel": np.ascontiguousarray(mel[k: k + CHUNK_FRAMES].T[None]), **state}
                out = session.run(None, feed)
                feeds.append(feed)
                state = {i.name: o for i, o in zip(inputs[1:], out[1:])}
    return feeds


def quantize(model: Path, out: Path, feeds: list[dict[str, np.ndarray]], exclude: tuple[str, ...] = EXCLUDE,
             method: str = CALIBRATION) -> None:
    """The float model at `model` quantised to `out` (QDQ), calibrated on `feeds` (the model's
    inputs, one dict per call), the nodes named in `exclude` left in float, each cache's scale
    shared with its Concat's."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared))
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile}[method],
                        nodes_to_exclude=list(exclude))
    share_cache_scales(out)


def share_cache_scales(path: Path) -> None:
    """Give each convolution cache the quantisation of the activation it is cut from.

    A causal convolution's input is Concat(cache, new frames), and the cache it hands on is the
    last frames of that Concat. Calibrated on their own, the cache input, the Concat and the cache
    output get three scales, and a frame carried to the next chunk is rounded three times where
    a whole file rounds it once: a stream's rows would drift from the file's. With the Concat's
    scale on all three, a carried frame re-quantises to the very integer it had (the rows are
    the file's, tests/test_phone_model.py)."""
    import onnx

    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only(nodes, op: str, what: str):
        found = [n for n in nodes if n.op_type == op]
        if len(found) != 1:
            raise RuntimeError(f"{path}: {what} is not one {op}: the quantiser's graph is not the one this script knows")
        return found[0]

    for cache in (i.name for i in model.graph.input if i.name.startswith("cache")):
        q_in = only(consumers[cache], "QuantizeLinear", f"{cache}'s consumer")
        dq_in = only(consumers[q_in.output[0]], "DequantizeLinear", f"{cache}'s dequantiser")
        concat = only(consumers[dq_in.output[0]], "Concat", f"{cache}'s use")
        scale, zero = only(consumers[concat.output[0]], "QuantizeLinear", f"{concat.name}'s output").input[1:3]
        dq_out = only([producer[f"new_{cache}"]], "DequantizeLinear", f"new_{cache}'s producer")
        q_out = only([producer[dq_out.input[0]]], "QuantizeLinear", f"new_{cache}'s quantiser")
        for node in (q_in, dq_in, q_out, dq_out):
            node.input[1], node.input[2] = scale, zero
    onnx.save(model, str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path(__file__).with_name("phones.onnx"))
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="folders of make_data.py's train_*.npz shards")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("phones.int8.onnx"))
    ap.add_argument("--utts", type=int, default=3, help="utterances per shard")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", nargs="*", default=list(EXCLUDE), metavar="NODE",
                    help="nodes left in float (ONNX node names; default: the Softmax, so the posteriors "
                         "are not rounded to steps of 1/255)")
    ap.add_argument("--calibration", choices=("minmax", "percentile"), default=CALIBRATION,
                    help="how each activation's range is set: its min/max over the calibration chunks, or "
                         "onnxruntime's 99.999th percentile of its magnitudes (the registered model's)")
    args = ap.parse_args()
    shards = sorted(p for folder in args.data for p in folder.glob("train_*.npz"))
    if not shards:
        sys.exit(f"no train_*.npz shards in {', '.join(map(str, args.data))}: make them with make_data.py")
    feeds = calibration_feeds(args.model, shards, args.utts, args.seed)
    print(f"calibrating on {len(feeds)} chunks of {CHUNK_FRAMES} frames from {len(shards)} shards", flush=True)
    quantize(args.model, args.out, feeds, tuple(args.exclude), args.calibration)
    digest = register(args.out)       # the registry's SHA-256 kept in step when it is the committed file
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, SHA-256 {digest})")


if __name__ == "__main__":
    main()
