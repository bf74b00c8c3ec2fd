"""`run_batch(manifest, out_dir, options) -> BatchSummary`: a manifest's lines through one backend.

The driver reads the manifest (checked before any work), reads each line's files, hashes them with
the options (`line_key`), skips the lines whose outputs were written from the same key before
(resume), ships the rest to the backend, writes what comes back (`<out>/<id>.<fmt>`, atomically), and
appends one record per line to `<out>/batch_report.jsonl` as it goes, so a driver killed at any point
leaves a report the next run resumes from. At the end the report is rewritten with one record per
manifest row, in manifest order.

Report records: `{"id", "row", "status": "ok" | "failed" | "skipped", "seconds", "error", "outputs",
"frames", "duration", "key", "audio", "worker"}`; "skipped" = unchanged since a run that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import structlog

from talkinghead import __version__
from talkinghead.batch.backends import LocalPool, RayBackend
from talkinghead.batch.manifest import Line, RowProblem, parse_formats, read_manifest
from talkinghead.batch.work import LineJob, LineResult, RenderSettings
from talkinghead.errors import ExportError, OptionsError

log = structlog.get_logger(__name__)

REPORT = "batch_report.jsonl"
DONE = ("ok", "skipped")


@dataclass(frozen=True)
class BatchOptions:
    """formats: of "json", "csv", "mp4"; workers: local processes (default every core) or, with Ray,
    lines at once (default the cluster's CPUs); ray: run on Ray; ray_address: None starts Ray here
    (as ray.init()), else "auto" / "HOST:PORT" / "ray://HOST:PORT"; render: MP4 settings."""

    formats: tuple[str, ...] = ("json",)
    workers: int | None = None
    ray: bool = False
    ray_address: str | None = None
    render: RenderSettings = field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", parse_formats(self.formats))
        if self.workers is not None and self.workers < 1:
            raise OptionsError(f"--workers must be 1 or more, got {self.workers}")


@dataclass(frozen=True)
class BatchSummary:
    """Counts of the run's lines, its wall time (s), where the report is and the failures' records."""

    total: int
    ok: int
    skipped: int
    failed: int
    seconds: float
    report: Path
    failures: tuple[dict, ...] = ()

    @property
    def lines_per_minute(self) -> float:
        return 60.0 * self.ok / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        lines = [f"{self.total} lines: {self.ok} done, {self.skipped} unchanged (skipped), {self.failed} failed, in "
                 f"{self.seconds:.1f} s ({self.lines_per_minute:.1f} lines/min); report: {self.report}"]
        lines += [f"  failed: {r['id']}: {r['error']}" for r in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more in the report")
        return "\n".join(lines)


Progress = Callable[[str, dict], None]   # (event: "start" | "line" | "problem", data)


def run_batch(manifest_path: str | Path, out_dir: str | Path, options: BatchOptions = BatchOptions(),
              progress: Progress | None = None) -> BatchSummary:
    """Run every line of the manifest; never stops for a failed line. Raises ManifestError for a
    manifest that cannot be used and ExportError for an output folder that cannot be written."""
    start = time.perf_counter()
    notify = progress or (lambda event, data: None)
    manifest = read_manifest(manifest_path, options.formats)
    out = _out_dir(out_dir)
    previous = read_report(out / REPORT)
    backend = RayBackend(options.ray_address, options.workers) if options.ray else LocalPool(options.workers)
    records: dict[str, dict] = {}
    notify("start", {"total": manifest.n_rows, "backend": backend.name})
    with Report(out / REPORT) as report:
        for problem in manifest.problems:
            records[_problem_id(problem)] = report.add(_problem_record(problem))
            notify("problem", records[_problem_id(problem)])
        lines = {line.id: line for line in manifest.lines}

        def jobs() -> Iterator[LineJob]:
            for line in manifest.lines:
                job = _job(line, options, previous, out)
                if isinstance(job, dict):            # unreadable input, or unchanged since the last run
                    records[line.id] = report.add(job)
                    notify("line", job)
                else:
                    yield job

        for result in backend.run(jobs()):
            record = _store(result, lines[result.id], out)
            records[result.id] = report.add(record)
            notify("line", record)
    ordered = [records[k] for k in _row_order(manifest) if k in records]
    write_report(out / REPORT, ordered)
    failures = tuple(r for r in ordered if r["status"] == "failed")
    summary = BatchSummary(total=len(ordered), ok=sum(r["status"] == "ok" for r in ordered),
                           skipped=sum(r["status"] == "skipped" for r in ordered), failed=len(failures),
                           seconds=time.perf_counter() - start, report=out / REPORT, failures=failures)
    log.info("batch.done", total=summary.total, ok=summary.ok, skipped=summary.skipped, failed=summary.failed,
             seconds=round(summary.seconds, 2), backend=backend.name)
    return summary


def line_key(line: Line, audio: bytes, portrait_digest: str | None, options: BatchOptions) -> str:
    """SHA-256 of everything a line's outputs depend on: the audio's bytes, the portrait's digest, the
    transcript, the options, the formats, the MP4 settings and talkinghead's version."""
    settings = {"version": __version__, "formats": sorted(options.formats), "motion": asdict(line.motion),
                "text": line.text, "marks": repr(line.marks),
                "audio": hashlib.sha256(audio).hexdigest()}
    if "mp4" in options.formats:
        signer = options.render.signer
        settings.update(portrait=portrait_digest, size=line.size, framing=line.framing,
                        renderer=options.render.renderer, watermark=repr(options.render.watermark),
                        signer=hashlib.sha256(signer.chain).hexdigest() if signer is not None else None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------ the driver


def _out_dir(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the output folder {out}: {exc.strerror or exc}; choose another -o") from None
    return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OptionsError(f"cannot read {path}: {exc.strerror or exc}") from None


def _job(line: Line, options: BatchOptions, previous: dict[str, dict], out: Path) -> LineJob | dict:
    """The line's job, or its record when it needs no work: unchanged since its outputs were
    written (skipped), or an input that cannot be read (failed)."""
    base = {"id": line.id, "row": line.row, "audio": str(line.audio)}
    try:
        audio = _read(line.audio)
        portrait = _read(line.portrait) if line.portrait is not None else None
    except OptionsError as exc:
        return {**base, "status": "failed", "seconds": 0.0, "error": str(exc)}
    digest = hashlib.sha256(portrait).hexdigest() if portrait is not None else None
    key = line_key(line, audio, digest, options)
    done = previous.get(line.id)
    if (done and done.get("status") in DONE and done.get("key") == key
            and all((out / name).is_file() for name in done.get("outputs", []))):
        return {**done, **base, "status": "skipped", "seconds": 0.0}
    return LineJob(id=line.id, key=key, audio=audio, formats=options.formats, motion=line.motion, text=line.text,
                   portrait=portrait, portrait_digest=digest,
                   size=line.size, framing=line.framing, render=options.render, marks=line.marks)


def _store(result: LineResult, line: Line, out: Path) -> dict:
    """Write a result's files (each to a temporary name, then renamed) and make its record."""
    record = {"id": result.id, "row": line.row, "status": result.status, "seconds": round(result.seconds, 3),
              "error": result.error, "outputs": [], "frames": result.frames, "duration": round(result.duration, 3),
              "key": result.key, "audio": str(line.audio), "worker": result.worker}
    try:
        for fmt, data in result.outputs.items():
            name = f"{result.id}.{fmt}"
            _atomic_write(out / name, data)
            record["outputs"].append(name)
    except OSError as exc:
        record.update(status="failed", error=f"cannot write {out / name}: {exc.strerror or exc}; check the "
                                             "output folder is writable and the disk has space")
    return record


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _problem_id(problem: RowProblem) -> str:
    return problem.id or f"row-{problem.row}"


def _problem_record(problem: RowProblem) -> dict:
    return {"id": _problem_id(problem), "row": problem.row, "status": "failed", "seconds": 0.0,
            "error": problem.error}


def _row_order(manifest) -> list[str]:
    rows = [(line.row, line.id) for line in manifest.lines] + [(p.row, _problem_id(p)) for p in manifest.problems]
    return [ident for _, ident in sorted(rows)]


# ------------------------------------------------------------------------------------ the report


def read_report(path: Path) -> dict[str, dict]:
    """id -> the last record for it in a report (a half-written last line, from a killed driver, is ignored)."""
    records = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("batch.report_unreadable", path=str(path), error=str(exc))
        return records
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            records[record["id"]] = record
    return records


def write_report(path: Path, records: list[dict]) -> None:
    _atomic_write(path, "".join(json.dumps(r) + "\n" for r in records).encode())


class Report:
    """The report file, appended to one flushed line per finished line."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Report:
        try:
            self.file = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"cannot write the report {self.path}: {exc.strerror or exc}; choose another -o") \
                from None
        return self

    def add(self, record: dict) -> dict:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        return record

    def __exit__(self, *exc) -> None:
        self.file.close()
