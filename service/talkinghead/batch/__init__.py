"""A manifest of dialogue lines -> takes, on this machine's cores or a Ray cluster (`talkinghead batch`).

manifest.py reads and checks the manifest; work.py is the work of one line (the same everywhere);
backends.py runs it on local worker processes or as Ray tasks; runner.py is the driver (resume,
outputs, report, progress).
"""

from talkinghead.batch.manifest import FORMATS, Line, Manifest, RowProblem, parse_formats, read_manifest
from talkinghead.batch.runner import REPORT, BatchOptions, BatchSummary, line_key, read_report, run_batch
from talkinghead.batch.work import LineJob, LineResult, RenderSettings, process_line

__all__ = ["FORMATS", "REPORT", "BatchOptions", "BatchSummary", "Line", "LineJob", "LineResult", "Manifest",
           "RenderSettings", "RowProblem", "line_key", "parse_formats", "process_line", "read_manifest",
           "read_report", "run_batch"]
