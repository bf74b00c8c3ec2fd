"""`talkinghead batch`: the manifest's checks, the local worker pool, and a real Ray cluster on loopback
(started by the tests, 2 CPUs, stopped after): the same takes as `talkinghead params`, a worker killed
mid-batch, a driver killed mid-batch and resumed, bad rows / missing audio / corrupt files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import psutil
import pytest

from cli_run import talkinghead
from ray_cluster import have_ray, loopback_env, ray_cluster
from speech import espeak_say
from talkinghead.batch import REPORT, parse_formats, read_manifest
from talkinghead.errors import ManifestError, OptionsError

SENTENCES = [
    "Maybe we should move the boat.",
    "Bob bought a big map of the park.",
    "We will wait for you by the old mill.",
    "Put the lamp on the table, please.",
    "The rain stopped before noon.",
    "Open the window and look outside.",
]
RUN_TIMEOUT_S = 240
needs_ray = pytest.mark.skipif(not have_ray(), reason="Ray is not installed: pip install 'talkinghead[ray]'")



@pytest.fixture(scope="module")
def voice(tmp_path_factory, espeak) -> Path:
    """Six short spoken lines (1.5-2.5 s, espeak-ng), line0.wav .. line5.wav."""
    folder = tmp_path_factory.mktemp("batch_audio")
    for i, text in enumerate(SENTENCES):
        espeak_say(text, "en-us", folder / f"line{i}.wav")
    return folder


@pytest.fixture(scope="module")
def cluster():
    if not have_ray():
        pytest.skip("Ray is not installed: pip install 'talkinghead[ray]'")
    with ray_cluster(num_cpus=2) as address:
        yield address


def lines_folder(voice: Path, tmp_path: Path, n: int = len(SENTENCES)) -> Path:
    folder = tmp_path / "script"
    folder.mkdir()
    for i in range(n):
        shutil.copy(voice / f"line{i}.wav", folder / f"line{i}.wav")
    return folder


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def batch(*args: str, **kw) -> subprocess.CompletedProcess:
    return talkinghead("batch", *args, env=loopback_env(), timeout=RUN_TIMEOUT_S, **kw)


def start_batch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "talkinghead", "batch", *args], env=loopback_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report(out: Path) -> dict[str, dict]:
    records = {}
    if (out / REPORT).exists():
        for raw in (out / REPORT).read_text().splitlines():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line being written
            records[record["id"]] = record
    return records


def wait_for(condition, what: str, timeout: float = RUN_TIMEOUT_S, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the batch ended before {what}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------- the manifest


@pytest.mark.slow
def test_unknown_column_stops_before_any_work(voice, tmp_path):
    folder = lines_folder(voice, tmp_path, 1)
    manifest = write_csv(folder / "lines.csv", "id,audio,emotoin", ["a,line0.wav,happy"])
    proc = batch(str(manifest), "-o", str(tmp_path / "takes"))
    assert proc.returncode == 2, proc.stderr
    assert "unknown column(s) 'emotoin'" in proc.stderr and "emotion" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "takes" / REPORT).exists()


def test_manifest_rows_are_checked_with_their_row_numbers(voice, tmp_path):
    folder = lines_folder(voice, tmp_path, 2)
    (folder / "t.txt").write_text(SENTENCES[1], encoding="utf-8")
    (folder / "good.marks").write_text('{"time": 120, "type": "viseme", "value": "p"}\n{"time": 200, "type": "viseme", "value": "a"}')
    (folder / "bad.marks").write_text('{"time": 120, "type": "viseme", "value": "QQ"}')
    manifest = folder / "lines.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"id": "a", "audio": "line0.wav", "text": SENTENCES[0], "head-motion": 0.5, "seed": "7"}),
        json.dumps({"id": "b", "audio": "line1.wav", "text_file": "t.txt", "language": "fr-CA"}),
        "",
        "{not json",
        json.dumps({"id": "c", "audio": "line1.wav", "expressiveness": 3}),
        json.dumps({"id": "a", "audio": "line1.wav"}),
        json.dumps({"id": "../up", "audio": "line1.wav"}),
        json.dumps({"id": "d", "audio": "line1.wav", "seed": 1.5}),
        json.dumps({"id": "e", "audio": "nowhere.wav"}),
        json.dumps({"id": "f", "audio": "line1.wav", "text": "x", "text_file": "t.txt"}),
        json.dumps({"id": "g", "audio": "line1.wav", "marks": "good.marks"}),
        json.dumps({"id": "h", "audio": "line1.wav", "marks": "bad.marks"}),
    ]) + "\n")
    m = read_manifest(manifest)
    assert [line.id for line in m.lines] == ["a", "b", "g"]
    a, b, g = m.lines
    assert g.marks.viseme_set == "polly" and [mk.value for mk in g.marks.marks] == ["p", "a"]
    assert a.row == 1 and a.motion.head_motion == 0.5 and a.motion.seed == 7 and a.audio == folder / "line0.wav"
    assert b.text == SENTENCES[1] and b.motion.language == "fr-CA" and b.motion.lipsync == "auto"
    problems = {p.row: p.error for p in m.problems}
    assert sorted(problems) == [4, 5, 6, 7, 8, 9, 10, 12]
    assert "'QQ' is not one of the polly visemes" in problems[12]
    assert "row 4: it is not valid JSON" in problems[4]
    assert "expressiveness must be between 0 and 2, got 3" in problems[5]
    assert "id 'a' is already used on row 1" in problems[6]
    assert "id '../up' cannot name a file" in problems[7]
    assert "seed must be a whole number" in problems[8]
    assert "no audio file at" in problems[9] and "nowhere.wav" in problems[9]
    assert "not both" in problems[10]
    with pytest.raises(ManifestError, match="unknown column.*'colour' on row 1"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"id": "a", "audio": "x.wav", "colour": "red"}) + "\n")
        read_manifest(bad)
    with pytest.raises(ManifestError, match="no audio column"):
        read_manifest(write_csv(tmp_path / "noaudio.csv", "id,text", ["a,hello"]))
    with pytest.raises(OptionsError, match="--formats"):
        parse_formats("json,gif")
    mp4 = read_manifest(write_csv(folder / "v.csv", "id,audio", ["a,line0.wav"]), formats=("mp4",))
    assert "an MP4 needs a portrait" in mp4.problems[0].error


@pytest.mark.slow
def test_check_lists_bad_rows_and_runs_nothing(voice, tmp_path):
    folder = lines_folder(voice, tmp_path, 1)
    manifest = write_csv(folder / "lines.csv", "id,audio,gaze", ["a,line0.wav,camera", "b,line0.wav,sideways"])
    proc = batch(str(manifest), "-o", str(tmp_path / "takes"), "--check")
    assert proc.returncode == 1
    assert "lines.csv row 3: gaze must be one of camera, wander, got 'sideways'" in proc.stdout
    assert "1 lines ready, 1 bad" in proc.stdout and not (tmp_path / "takes").exists()


# ------------------------------------------------------------------------- the local worker pool


@pytest.mark.slow
def test_local_pool_reports_bad_rows_missing_audio_and_corrupt_files_and_runs_the_rest(voice, tmp_path):
    folder = lines_folder(voice, tmp_path, 2)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    manifest = write_csv(folder / "lines.csv", "id,audio,text,emotion", [
        f'good0,line0.wav,"{SENTENCES[0]}",happy',
        "badrow,line0.wav,,grumpy",
        "gone,missing.wav,,",
        "corrupt,corrupt.wav,,",
        "good1,line1.wav,,",
    ])
    out = tmp_path / "takes"
    proc = batch(str(manifest), "-o", str(out), "--workers", "2", "--formats", "json,csv")
    assert proc.returncode == 1, proc.stderr
    records = report(out)
    assert list(records) == ["good0", "badrow", "gone", "corrupt", "good1"]  # manifest order, one each
    assert {k: r["status"] for k, r in records.items()} == {
        "good0": "ok", "badrow": "failed", "gone": "failed", "corrupt": "failed", "good1": "ok"}
    assert "lines.csv row 3: emotion must be one of" in records["badrow"]["error"]
    assert "lines.csv row 4: there is no audio file" in records["gone"]["error"]
    assert "not a readable audio file" in records["corrupt"]["error"]
    for ident in ("good0", "good1"):
        assert records[ident]["outputs"] == [f"{ident}.json", f"{ident}.csv"]
        take = json.loads((out / f"{ident}.json").read_text())
        assert take["fps"] == 30 and len(take["frames"]) == records[ident]["frames"] > 30
        assert (out / f"{ident}.csv").read_text().startswith("Timecode,BlendShapeCount")
    assert "2 done, 0 unchanged (skipped), 3 failed" in proc.stdout
    assert "Traceback" not in proc.stderr


def kill_a_worker_mid_batch(voice: Path, tmp_path: Path, find_worker, *args: str) -> None:
    """Run six lines, kill the worker `find_worker(driver)` returns (waited for), and check that the
    batch completes anyway, the killed worker's line redone by another."""
    folder = lines_folder(voice, tmp_path)
    manifest = write_csv(folder / "lines.csv", "id,audio,text",
                         [f'l{i},line{i}.wav,"{text}"' for i, text in enumerate(SENTENCES)])
    out = tmp_path / "takes"
    proc = start_batch(str(manifest), "-o", str(out), *args)
    try:
        victim = wait_for(lambda: find_worker(psutil.Process(proc.pid), out), "a worker running a line", proc=proc)
        finished_before = set(report(out))
        victim.kill()
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    records = report(out)
    assert sorted(records) == [f"l{i}" for i in range(len(SENTENCES))]
    assert all(r["status"] == "ok" for r in records.values()), records
    assert len(finished_before) < len(SENTENCES), "the worker was not killed mid-batch"
    killed = f":{victim.pid}"   # what it had in hand was redone by another worker
    assert not [r for k, r in records.items() if k not in finished_before and r["worker"].endswith(killed)]


@pytest.mark.slow
def test_local_worker_killed_mid_batch_is_retried(voice, tmp_path):
    def local_worker(driver: psutil.Process, out: Path):
        if not any(r["status"] == "ok" for r in report(out).values()):
            return None                 # both workers started and busy
        workers = [p for p in driver.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        return workers[0] if len(workers) == 2 else None

    kill_a_worker_mid_batch(voice, tmp_path, local_worker, "--workers", "2")


@pytest.mark.slow
def test_mp4_lines_with_their_portraits(voice, tmp_path):
    skimage = pytest.importorskip("skimage.data")
    import imageio.v3 as iio

    folder = lines_folder(voice, tmp_path, 1)
    iio.imwrite(folder / "astronaut.png", skimage.astronaut())
    manifest = write_csv(folder / "lines.csv", "id,audio,portrait,size,fps", ["v0,line0.wav,astronaut.png,256,25"])
    out = tmp_path / "takes"
    proc = batch(str(manifest), "-o", str(out), "--workers", "1", "--formats", "mp4,json")
    assert proc.returncode == 0, proc.stderr
    take = json.loads((out / "v0.json").read_text())
    with av.open(str(out / "v0.mp4")) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height) == (256, 256)
        assert sum(1 for _ in video.decode(stream)) == len(take["frames"])
    from talkinghead.provenance.verify import verify_file

    verdict = verify_file(out / "v0.mp4")
    assert verdict.watermark.detected and verdict.c2pa.present and verdict.c2pa.valid


# ------------------------------------------------------------------------ a real Ray cluster


@needs_ray
@pytest.mark.slow
def test_ray_alone_starts_ray_here_for_the_run(voice, tmp_path):
    folder = lines_folder(voice, tmp_path, 2)
    manifest = write_csv(folder / "lines.csv", "id,audio,text", [f'l{i},line{i}.wav,"{SENTENCES[i]}"' for i in range(2)])
    out = tmp_path / "takes"
    env = {**loopback_env(), "RAY_ADDRESS": ""}
    proc = talkinghead("batch", str(manifest), "-o", str(out), "--ray", "--workers", "1", env=env,
                       timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    assert "2 done" in proc.stdout and all(r["status"] == "ok" for r in report(out).values())


@needs_ray
@pytest.mark.slow
def test_ray_batch_gives_exactly_what_params_gives(voice, tmp_path, cluster):
    folder = lines_folder(voice, tmp_path, 4)
    (folder / "l2.txt").write_text(SENTENCES[2], encoding="utf-8")
    (folder / "b.marks").write_text(json.dumps({"marks": [{"kind": "viseme", "value": "PP", "start": 0.3, "end": 0.4},
                                                          {"kind": "viseme", "value": "aa", "start": 0.4}]}))
    rows = [
        ({"id": "a", "audio": "line0.wav", "text": SENTENCES[0], "emotion": "happy", "seed": 3},
         ["--text", SENTENCES[0], "--emotion", "happy", "--seed", "3"]),
        ({"id": "b", "audio": "line1.wav", "head_motion": 0.5, "fps": 25, "marks": "b.marks"},
         ["--head-motion", "0.5", "--fps", "25", "--marks", str(folder / "b.marks")]),
        ({"id": "c", "audio": "line2.wav", "text_file": "l2.txt", "gaze": "wander", "blink-rate": 30,
          "language": "en-GB"},
         ["--text-file", str(folder / "l2.txt"), "--gaze", "wander", "--blink-rate", "30", "--language", "en-GB"]),
        ({"id": "d", "audio": "line3.wav", "language": "fr", "expressiveness": 1.5},
         ["--language", "fr", "--expressiveness", "1.5"]),
    ]
    manifest = folder / "lines.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row, _ in rows))
    out = tmp_path / "takes"
    proc = batch(str(manifest), "-o", str(out), "--ray", cluster, "--formats", "json,csv")
    assert proc.returncode == 0, proc.stderr
    assert "4 done, 0 unchanged (skipped), 0 failed" in proc.stdout
    for (row, flags), fmt in zip(rows, ["csv", "json", "json", "json"]):
        expected = tmp_path / f"params_{row['id']}.{fmt}"
        done = talkinghead("params", "--audio", str(folder / row["audio"]), *flags, "-o", str(expected))
        assert done.returncode == 0, done.stderr
        assert (out / f"{row['id']}.{fmt}").read_bytes() == expected.read_bytes(), row["id"]


@needs_ray
@pytest.mark.slow
def test_ray_worker_killed_mid_batch_is_retried_and_the_batch_completes(voice, tmp_path, cluster):
    def busy_ray_worker(driver: psutil.Process, out: Path):
        for p in psutil.process_iter(["pid", "cmdline"]):
            if " ".join(p.info["cmdline"] or []).startswith("ray::process_line"):
                return p
        return None

    kill_a_worker_mid_batch(voice, tmp_path, busy_ray_worker, "--ray", cluster)


@needs_ray
@pytest.mark.slow
def test_ray_driver_killed_mid_batch_resumes_without_redoing_finished_lines(voice, tmp_path, cluster):
    folder = lines_folder(voice, tmp_path)
    manifest = write_csv(folder / "lines.csv", "id,audio,text",
                         [f'l{i},line{i}.wav,"{text}"' for i, text in enumerate(SENTENCES)])
    out = tmp_path / "takes"
    args = [str(manifest), "-o", str(out), "--ray", cluster, "--workers", "1", "--formats", "json,csv"]
    proc = start_batch(*args)
    try:
        wait_for(lambda: sum(r["status"] == "ok" for r in report(out).values()) >= 2, "two lines", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    first = {k: r for k, r in report(out).items() if r["status"] == "ok"}
    assert 2 <= len(first) < len(SENTENCES), "the driver was not killed mid-batch"
    stamps = {name: (out / name).stat().st_mtime_ns for r in first.values() for name in r["outputs"]}
    again = batch(*args)
    assert again.returncode == 0, again.stderr
    records = report(out)
    assert list(records) == [f"l{i}" for i in range(len(SENTENCES))]
    assert {k for k, r in records.items() if r["status"] == "skipped"} == set(first)
    assert all(r["status"] == "ok" for k, r in records.items() if k not in first)
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps  # not rewritten
    assert f"{len(SENTENCES) - len(first)} done, {len(first)} unchanged (skipped), 0 failed" in again.stdout
    # changed audio is a changed line: only it runs again
    manifest.write_text(manifest.read_text().replace(f'l0,line0.wav,"{SENTENCES[0]}"', f'l0,line1.wav,"{SENTENCES[1]}"'))
    third = batch(*args)
    assert third.returncode == 0 and "1 done, 5 unchanged (skipped), 0 failed" in third.stdout, third.stdout
