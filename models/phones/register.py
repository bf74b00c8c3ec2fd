"""Keep the model registry's SHA-256 of a committed phone model file in step with the file.

`register(path)` returns the file's SHA-256 and, where `path` is one of the files the registry
restores from the repository (`talkinghead.models`: entries with a RepoSource, such as
models/phones/phones.onnx and phones.int8.onnx), writes it into that entry's constant in
service/talkinghead/models.py (`<ENTRY NAME>_SHA256`, e.g. PHONES_INT8_SHA256). train.py's
export and quantize.py call it, so a remade model and the registry never disagree.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from talkinghead import models

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "service" / "talkinghead" / "models.py"


def committed() -> dict[Path, str]:
    """Each committed model file (resolved) -> the name of its SHA-256 constant in the registry."""
    return {(ROOT / source.path).resolve(): f"{name.upper()}_SHA256"
            for name, entry in models.MODELS.items() for source in entry.sources
            if isinstance(source, models.RepoSource)}


def register(path: Path, registry: Path = REGISTRY) -> str:
    """`path`'s SHA-256, written into `registry` when `path` is a committed model file."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    constant = committed().get(Path(path).resolve())
    if constant is not None:
        text, n = re.subn(rf'^{constant} = "[0-9a-f]{{64}}"', f'{constant} = "{digest}"', registry.read_text(),
                          flags=re.MULTILINE)
        if n != 1:
            raise RuntimeError(f"{registry} has no line {constant} = \"<sha256>\" to keep in step with {path}")
        registry.write_text(text)
        print(f"{registry.name}: {constant} = {digest[:12]}…")
    return digest
