"""The one place that picks onnxruntime's execution providers (render/device.py picks torch's).

Models the project trains run with onnxruntime: on CUDA where `onnxruntime-gpu` is installed and
sees a GPU, else on the CPU. Sessions run single-threaded: the service runs many streams at once,
one per core, and a small model gains nothing from splitting a chunk across threads.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from talkinghead.errors import ModelError

log = structlog.get_logger(__name__)

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def onnx_providers() -> list[str]:
    """The available providers in PREFERRED order (the CPU one is always there)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in PREFERRED if p in available] or ["CPUExecutionProvider"]


def onnx_session(path: Path):
    """An onnxruntime InferenceSession for the model file at `path` (already SHA-256 checked)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=onnx_providers())
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{path} is not a model onnxruntime can load ({e}); restore it (see models/README.md).") from e
    log.debug("runtime.session", model=str(path), providers=session.get_providers())
    return session
