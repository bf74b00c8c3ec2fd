"""Lines per minute of `talkinghead batch` against a shell loop of `talkinghead params`, one process per line.

    python benchmarks/batch_throughput.py [--lines 60] [--modes loop,w1,w2,ray] [--no-text] [--work DIR]

Makes LINES spoken lines of 3-10 s (espeak-ng, each with its transcript, in --work),
then times, end to end from the command's start to its exit (start-up, model loading, workers
included):
- loop: a bash script with one `talkinghead params --audio .. --text .. -o ..` per line;
- w1, w2: `talkinghead batch lines.csv -o DIR --workers 1|2`;
- ray: `talkinghead batch lines.csv -o DIR --ray ADDRESS` on a Ray cluster with 2 CPUs on loopback,
  started before the clock starts (tests/ray_cluster.py).
Each run writes into an empty folder (nothing is skipped). Memory: the peak resident set size of each
worker process (psutil, sampled every 0.2 s). The machine's load average is printed before and after:
the figures are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ray_cluster import loopback_env, ray_cluster  # noqa: E402

POOL = [
    "Maybe we should move the boat before the storm comes in.",
    "Bob bought a big map of the park and my mom paid for it.",
    "We will wait for you by the old mill until the sun goes down.",
    "Put the lamp on the table and open the window, please.",
    "The guards change at midnight, so keep your voice down.",
    "I have never seen a dragon this far south of the mountains.",
    "Bring me the blue book from the library upstairs.",
    "If you help me find my brother, I will pay you well.",
    "The merchant said the road to the north was closed.",
    "Do not touch anything in this room until I come back.",
]
WORDS_PER_SECOND = 3.0   # a first guess at espeak-ng's rate; each line is then measured and adjusted
TALKINGHEAD = [sys.executable, "-m", "talkinghead"]


def make_lines(work: Path, n: int, text: bool) -> Path:
    """n lines of 3..10 s (targets spread evenly), their transcripts, and lines.csv; reused when present."""
    import csv

    audio = work / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        target = 3.2 + 6.6 * i / max(n - 1, 1)
        words: list[str] = []
        while len(words) < 3 * target * WORDS_PER_SECOND:
            words += POOL[int(rng.integers(len(POOL)))].split()
        wav = audio / f"line{i:03d}.wav"
        count = int(target * WORDS_PER_SECOND)
        for _ in range(6):   # speak, measure, and adjust the word count until the line is 3..10 s long
            sentence = " ".join(words[:count]).rstrip(",") + "."
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), sentence], check=True, capture_output=True)
            seconds = sf.info(wav).duration
            if abs(seconds - target) < 0.4 and 3.0 <= seconds <= 10.0:
                break
            count = max(4, round(count * target / seconds))
        rows.append({"id": f"line{i:03d}", "audio": f"audio/{wav.name}", "text": sentence if text else ""})
    manifest = work / ("lines.csv" if text else "lines_notext.csv")
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "audio", "text"])
        writer.writeheader()
        writer.writerows(rows)
    durations = [sf.info(audio / f"line{i:03d}.wav").duration for i in range(n)]
    print(f"{n} lines, {min(durations):.1f}-{max(durations):.1f} s each, {sum(durations) / 60:.1f} min of speech, "
          f"transcripts: {'yes' if text else 'no'}")
    return manifest


class MemoryWatch:
    """Peak RSS (bytes) per process among the children of `root` or whose command line matches `prefix`."""

    def __init__(self, root: int, prefix: str | None = None):
        self.root, self.prefix, self.peak = root, prefix, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _procs(self):
        try:
            procs = psutil.Process(self.root).children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        if self.prefix:
            procs += [p for p in psutil.process_iter(["cmdline"])
                      if " ".join(p.info["cmdline"] or []).startswith(self.prefix)]
        return procs

    def _run(self):
        while not self._stop.is_set():
            for p in self._procs():
                try:
                    self.peak[p.pid] = max(self.peak.get(p.pid, 0), p.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.2)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(cmd: list[str], env: dict | None = None, prefix: str | None = None) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = MemoryWatch(proc.pid, prefix)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    peak = watch.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    return seconds, peak


def shell_loop(work: Path, manifest: Path, out: Path) -> tuple[float, dict]:
    import csv

    with open(manifest, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = ["set -e"]
    for r in rows:
        text = ["--text", r["text"]] if r["text"] else []
        args = [*TALKINGHEAD, "params", "--audio", str(work / r["audio"]), *text, "-o", str(out / f"{r['id']}.json")]
        lines.append(shlex.join(args) + " > /dev/null 2>&1")
    script = work / "loop.sh"
    script.write_text("\n".join(lines) + "\n")
    return timed(["bash", str(script)])


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=60)
    p.add_argument("--modes", default="loop,w1,w2,ray", help="comma-separated: loop, w1, w2, ray")
    p.add_argument("--no-text", action="store_true", help="no transcripts: the recogniser finds the words")
    p.add_argument("--work", type=Path, default=Path("/tmp/talkinghead_batch_bench"))
    args = p.parse_args()
    manifest = make_lines(args.work, args.lines, not args.no_text)
    modes = args.modes.split(",")
    print(f"before: {load()} on {os.cpu_count()} cores")
    results = {}
    for mode in modes:
        out = args.work / f"out_{mode}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        batch = [*TALKINGHEAD, "batch", str(manifest), "-o", str(out)]
        if mode == "loop":
            results[mode] = shell_loop(args.work, manifest, out)
        elif mode in ("w1", "w2"):
            results[mode] = timed(batch + ["--workers", mode[1]], env={**os.environ, "TQDM_DISABLE": "1"})
        elif mode == "ray":
            with ray_cluster(num_cpus=2) as address:
                results[mode] = timed(batch + ["--ray", address], env=loopback_env(), prefix="ray::process_line")
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        written = len(list(out.glob("*.json")))
        if written != args.lines:
            raise SystemExit(f"{mode}: {written} takes written, not {args.lines}")
        print(f"  {mode}: {results[mode][0]:.1f} s  ({load()})", flush=True)
    print(f"after: {load()}")
    print("\n| run | seconds | lines/min | vs 1 worker | vs shell loop | peak RSS per worker |")
    print("|---|---|---|---|---|---|")
    rate = {m: 60 * args.lines / s for m, (s, _) in results.items()}
    for mode, (seconds, peak) in results.items():
        memory = f"{max(peak.values()) / 2**20:.0f} MB" if peak else "-"
        vs1 = f"{rate[mode] / rate['w1']:.2f}x" if "w1" in rate else "-"
        vsl = f"{rate[mode] / rate['loop']:.1f}x" if "loop" in rate else "-"
        print(f"| {mode} | {seconds:.1f} | {rate[mode]:.1f} | {vs1} | {vsl} | {memory} |")


if __name__ == "__main__":
    main()
