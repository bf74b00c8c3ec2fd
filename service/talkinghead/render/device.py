"""The one place that picks the render backend and its device.

- "cpu":   the numpy + OpenCV renderer (`render/cpu.py`), always there;
- "torch": the batched torch renderer (`render/torch_backend.py`), on the GPU when CUDA is
           available, else on the CPU (slower than "cpu" there: it is for GPUs and for tests);
- "auto":  torch on CUDA when torch is installed and sees a GPU, else "cpu".

torch is optional: it is imported here, inside the function, and never where the CPU path
imports.
"""

from __future__ import annotations

from talkinghead.errors import OptionsError

BACKENDS = ("auto", "cpu", "torch")
TORCH_INSTALL = "pip install torch==2.13.0 (or the CUDA build of torch 2.13.0 for your GPU)"


def pick_backend(name: str = "auto") -> tuple[str, str | None]:
    """A renderer name -> (backend, torch device): ("cpu", None), ("torch", "cuda") or
    ("torch", "cpu"). Raises OptionsError for an unknown name, or for "torch" without torch."""
    if name not in BACKENDS:
        raise OptionsError(f"--renderer must be one of {', '.join(BACKENDS)}, not {name!r}")
    if name == "cpu":
        return "cpu", None
    try:
        import torch
    except ImportError:
        if name == "auto":
            return "cpu", None
        raise OptionsError(f"--renderer torch needs PyTorch, which is not installed: {TORCH_INSTALL}; "
                           "or render with --renderer cpu") from None
    cuda = torch.cuda.is_available()
    if name == "auto" and not cuda:
        return "cpu", None
    return "torch", "cuda" if cuda else "cpu"
