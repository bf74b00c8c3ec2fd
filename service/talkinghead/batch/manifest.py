"""Reading a batch manifest: CSV or JSON Lines, one dialogue line per row, checked before any work.

Columns (names are case-insensitive; `head-motion` and `head_motion` are the same column):

- `id` (required): the take's name, used for its output files: letters, digits, `_ - .`, unique;
- `audio` (required): the line's audio file, relative to the manifest's folder (or absolute);
- `text` or `text_file` (optional): the transcript, or a UTF-8 file holding it (relative to the manifest);
- `marks` (optional): a TTS engine's timings for the line, a file relative to the manifest (Amazon Polly
  speech marks, or JSON `{"marks": [...], "viseme_set": ...}`, as `talkinghead params --marks`);
- `language` (optional, default `en`): a language tag such as `en-US`, `fr`, `it`: `MotionOptions.language`,
  as `talkinghead params --language` (a transcript in another language is aligned on the phone model);
- `portrait` (for MP4s): the photo to animate, relative to the manifest;
- `size`, `framing` (for MP4s): as `talkinghead render --size/--framing`;
- every `MotionOptions` field: `fps seed expressiveness head_motion blink_rate emotion emotion_intensity
  gaze lipsync`; an empty cell takes the default.

A manifest-level mistake (unreadable file, no `id` or `audio` column, an unknown column) raises
ManifestError at once. A bad row (bad value, duplicate id, missing audio/transcript/portrait file) becomes
a `RowProblem` with its row number: the batch reports it, records it as failed, and runs the other rows.
Row numbers are the file's line numbers (a CSV's header is row 1, as in a spreadsheet).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from talkinghead.errors import ManifestError, OptionsError
from talkinghead.face.rig import FRAMINGS, MAX_SIZE, MIN_SIZE
from talkinghead.media import FPS_CHOICES
from talkinghead.motion import line as tts
from talkinghead.motion.options import MotionOptions

FORMATS = ("json", "csv", "mp4")
MOTION_COLUMNS = tuple(f.name for f in fields(MotionOptions))
LINE_COLUMNS = ("id", "audio", "text", "text_file", "marks", "portrait", "size", "framing")
COLUMNS = LINE_COLUMNS + MOTION_COLUMNS
DEFAULT_SIZE, DEFAULT_FRAMING = 512, "face"
MAX_ID_CHARS = 200
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Line:
    """One valid manifest row, paths resolved against the manifest's folder."""

    row: int
    id: str
    audio: Path
    text: str | None = None            # the transcript (a text_file is read into it)
    portrait: Path | None = None
    size: int = DEFAULT_SIZE            # MP4 pixels (see talkinghead render --size)
    framing: str = DEFAULT_FRAMING
    motion: MotionOptions = field(default_factory=MotionOptions)
    marks: tts.Line | None = None       # a TTS engine's timings (the marks file, read)


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot run: its number, its id when it has one, and what to fix."""

    row: int
    id: str | None
    error: str


@dataclass(frozen=True)
class Manifest:
    path: Path
    lines: tuple[Line, ...]
    problems: tuple[RowProblem, ...]

    @property
    def n_rows(self) -> int:
        return len(self.lines) + len(self.problems)


def parse_formats(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """"json,csv" -> ("json", "csv"); raises OptionsError for an unknown or empty list."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise OptionsError(f"--formats takes a comma-separated list of {', '.join(FORMATS)}, not {text!r}")
    return formats


def read_manifest(path: str | Path, formats: tuple[str, ...] = ("json",)) -> Manifest:
    """Read and check the manifest at `path` (.csv, or .jsonl/.ndjson/.json for JSON Lines).

    `formats`: what will be written; "mp4" makes `portrait` required. Raises ManifestError for a
    manifest-level mistake; bad rows come back in `Manifest.problems`."""
    path = Path(path)
    rows = _read_rows(path)
    lines, problems, seen = [], [], {}
    for row, record in rows:
        ident = record.get("id")
        ident = str(ident).strip() if ident not in (None, "") else None
        try:
            line = _line(row, record, path.parent, formats)
            if line.id in seen:
                raise OptionsError(f"id {line.id!r} is already used on row {seen[line.id]}: give every line its "
                                   "own id (it names the output files)")
            seen[line.id] = row
            lines.append(line)
        except OptionsError as exc:
            problems.append(RowProblem(row, ident, f"{path.name} row {row}: {exc}"))
    if not rows:
        raise ManifestError(f"{path} has no lines: add one row per dialogue line (columns id, audio, ...)")
    return Manifest(path, tuple(lines), tuple(problems))


def _column(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def _check_columns(path: Path, names: list[str], row: int | None = None) -> None:
    unknown = [n for n in names if _column(n) not in COLUMNS]
    where = f" on row {row}" if row else ""
    if unknown:
        raise ManifestError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}{where}; the columns are "
                            f"{', '.join(COLUMNS)}")


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """[(row number, {column: value})], columns normalised; raises ManifestError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"there is no manifest at {path}: check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest {path}: {exc}; give a UTF-8 CSV or JSON Lines file") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _json_lines(path, text)
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise ManifestError(f"the manifest {path.name} should end in .csv (a spreadsheet export) or .jsonl "
                            "(JSON Lines)")
    return _csv_rows(path, text)


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(text.splitlines(keepends=True), dialect)
    try:
        header = next(reader, None)
        if not header:
            raise ManifestError(f"{path} is empty: its first row names the columns (id, audio, ...)")
        _check_columns(path, header)
        names = [_column(n) for n in header]
        _required(path, names)
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            row = reader.line_num
            if len(cells) > len(names):
                rows.append((row, {"__error__": f"it has {len(cells)} cells but the header names {len(names)} "
                                                "columns (a comma inside an unquoted cell?)", "id": cells[0]}))
                continue
            rows.append((row, {n: c for n, c in zip(names, cells) if c.strip() != ""}))
    except csv.Error as exc:
        raise ManifestError(f"{path} is not a readable CSV file (row {reader.line_num}: {exc})") from None
    return rows


def _json_lines(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for row, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            rows.append((row, {"__error__": f"it is not valid JSON ({exc.msg}); each line is one JSON object"}))
            continue
        if not isinstance(record, dict):
            rows.append((row, {"__error__": "it is not a JSON object; each line is one {\"id\": ..., \"audio\": ...}"}))
            continue
        _check_columns(path, list(record), row)
        rows.append((row, {_column(k): v for k, v in record.items() if v is not None and v != ""}))
    return rows


def _required(path: Path, names: list[str]) -> None:
    missing = [c for c in ("id", "audio") if c not in names]
    if missing:
        raise ManifestError(f"{path} has no {' or '.join(missing)} column: every line needs an id (names its "
                            "outputs) and its audio file")


def _line(row: int, record: dict, folder: Path, formats: tuple[str, ...]) -> Line:
    if "__error__" in record:
        raise OptionsError(record["__error__"])
    ident = str(record.get("id", "")).strip()
    if not ident:
        raise OptionsError("it has no id: give every line an id (it names the output files)")
    if len(ident) > MAX_ID_CHARS or not _ID.match(ident):
        raise OptionsError(f"id {ident!r} cannot name a file: use letters, digits, '_', '-' and '.' "
                           f"(at most {MAX_ID_CHARS}, not starting with '.' or '-')")
    if "audio" not in record:
        raise OptionsError(f"line {ident!r} has no audio: give the audio file's path (relative to the manifest)")
    audio = _existing(folder, record["audio"], "audio file")
    if "text" in record and "text_file" in record:
        raise OptionsError("give the transcript as text or as text_file, not both")
    text = record.get("text")
    if "text_file" in record:
        text_file = _existing(folder, record["text_file"], "transcript file (text_file)")
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OptionsError(f"cannot read the transcript {text_file}: {exc}; give a UTF-8 text file") from None
    motion = _motion(record)
    marks = None
    if "marks" in record:
        marks = tts.Line(language=motion.language, **tts.read_marks(_existing(folder, record["marks"], "marks file")))
        tts.lip_source(marks)          # unreadable marks fail the row now, not in a worker
    portrait = None
    size = _typed(record, "size", int, DEFAULT_SIZE)
    framing = str(record.get("framing", DEFAULT_FRAMING))
    if "mp4" in formats:
        if "portrait" not in record:
            raise OptionsError("an MP4 needs a portrait: give the photo's path in the portrait column")
        portrait = _existing(folder, record["portrait"], "portrait")
        if motion.fps not in FPS_CHOICES:
            raise OptionsError(f"fps must be one of {', '.join(map(str, FPS_CHOICES))} for an MP4, not {motion.fps:g}")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise OptionsError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
        if framing not in FRAMINGS:
            raise OptionsError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    return Line(row=row, id=ident, audio=audio, text=None if text is None else str(text),
                portrait=portrait, size=size, framing=framing, motion=motion, marks=marks)


def _motion(record: dict) -> MotionOptions:
    defaults = MotionOptions()
    values = {}
    for f in fields(MotionOptions):
        values[f.name] = _typed(record, f.name, type(getattr(defaults, f.name)), getattr(defaults, f.name))
    return MotionOptions(**values)


def _typed(record: dict, name: str, kind: type, default):
    if name not in record:
        return default
    value = record[name]
    try:
        if kind is int:
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value).strip()
    except (TypeError, ValueError):
        wanted = "a whole number" if kind is int else "a number"
        raise OptionsError(f"{name.replace('_', '-')} must be {wanted}, got {value!r}") from None


def _existing(folder: Path, value, what: str) -> Path:
    path = Path(str(value).strip()).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise OptionsError(f"there is no {what} at {path}: check the path (relative to the manifest's folder)")
    return path
