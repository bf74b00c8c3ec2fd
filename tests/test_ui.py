"""The web page (`talkinghead ui`): a real server process on a loopback port, driven by a real
headless Chromium (Debian's chromium + chromium-driver, through selenium).

Set TALKINGHEAD_UI_SCREENSHOT=docs/ui.png to also save the page with its result there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the `ui` extra (gradio) is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (the `test` extra has it)")

from cli_run import free_port, talkinghead  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from talkinghead.exports import read_json, read_livelink_csv  # noqa: E402
from talkinghead.provenance.verify import verify_file  # noqa: E402
from talkinghead.track import MotionTrack  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RENDER_TIMEOUT = 240      # seconds: the example at 256 px renders in about 20 s on one core
# Flags that keep Chromium off the network and out of any profile (nothing outside is reachable).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1800",
                  # a fake microphone (Chromium's test tone) that needs no permission prompt
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")

pytestmark = [pytest.mark.slow,   # a browser drives the web page
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`talkinghead ui` as its own process on a free loopback port; yields its URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("ui") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "ui", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"talkinghead ui exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"talkinghead ui did not answer within 120 s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=15) == 0, log_path.read_text()    # SIGTERM stops it cleanly
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="talkinghead-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    os.environ.setdefault("SE_AVOID_STATS", "true")   # selenium-manager is not used (driver path given)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(lambda: driver.find_elements(By.ID, "animate"), 60, "the page did not load")


def _wait(condition, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"{what} (after {timeout:g} s)")


def _upload(driver, elem_id: str, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(str(path))


def _set_size(driver, pixels: int) -> None:
    size = driver.find_element(By.CSS_SELECTOR, "#size input[type=number]")
    size.send_keys(Keys.CONTROL, "a")
    size.send_keys(str(pixels), Keys.TAB)


def _status(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value")


def _toasts(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.toast-item')).map(e => e.innerText)")


def _body_text(driver) -> str:
    return driver.execute_script("return document.body.innerText")


def _video_state(driver) -> dict | None:
    return driver.execute_script("""
        const v = document.querySelector('#video video');
        return v && v.src ? {src: v.src, readyState: v.readyState, duration: v.duration,
                             currentTime: v.currentTime, paused: v.paused, error: v.error && v.error.code} : null;""")


def _download(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as r:
        path.write_bytes(r.read())
    return path


def test_the_example_renders_with_progress_plays_and_its_take_files_download(server, browser, tmp_path):
    import soundfile as sf

    _open(browser, server)
    browser.find_element(By.XPATH, "//button[contains(., 'astronaut.jpg says hello.flac')]").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#preview img"), 30,
          "picking the example did not show the portrait")
    _set_size(browser, 256)
    browser.find_element(By.ID, "animate").click()

    progress: set[str] = set()

    def done():
        progress.update(line for line in _body_text(browser).splitlines() if "rendering frame" in line)
        return _video_state(browser)

    _wait(done, RENDER_TIMEOUT, "no video came back", poll=0.2)
    assert progress, "the page showed no rendering progress while the take rendered"
    assert not _toasts(browser), _toasts(browser)
    audio_seconds = sf.info(str(EXAMPLES / "hello.flac")).duration
    n_frames = MotionTrack.frame_count(audio_seconds, 30)
    status = _status(browser)
    assert status == f"wrote hello.mp4: {n_frames} frames at 30 fps, 256x256, {audio_seconds:.2f} s"   # the CLI's line

    # It plays: metadata loaded, the clip's duration, and time advancing after play().
    state = _wait(lambda: (s := _video_state(browser)) and s["readyState"] >= 1 and s, 30,
                  "the video's metadata did not load")
    assert state["error"] is None
    assert abs(state["duration"] - audio_seconds) < 0.1, (state, audio_seconds)
    browser.execute_script("const v = document.querySelector('#video video'); v.muted = true; v.play();")
    _wait(lambda: _video_state(browser)["currentTime"] > 0.5, 20, "the video did not play")

    verdict = browser.find_element(By.CSS_SELECTOR, "#verdict textarea").get_attribute("value")
    assert "verdict:   made by talkinghead (synthetic)" in verdict, verdict
    assert "/tmp/" not in verdict                                   # no server paths on the page
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sheet img"), 10, "no contact sheet shown")
    # Everything the page loaded came from the server itself: no CDN, fonts or analytics elsewhere.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith((server, "data:", "blob:")) for u in loaded), \
        [u for u in loaded if not u.startswith((server, "data:", "blob:"))]

    shot = tmp_path / "ui.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TALKINGHEAD_UI_SCREENSHOT"):
        shutil.copy(shot, os.environ["TALKINGHEAD_UI_SCREENSHOT"])

    links = {Path(a.get_attribute("href")).name: a.get_attribute("href")
             for a in browser.find_elements(By.CSS_SELECTOR, "#files a")}
    assert set(links) == {"hello.mp4", "hello.json", "hello.csv", "hello_sheet.png"}, links
    video = _download(links["hello.mp4"], tmp_path / "hello.mp4")
    report = verify_file(video)
    assert report.synthetic and report.c2pa.valid
    take = read_json(_download(links["hello.json"], tmp_path / "hello.json"))
    csv_take = read_livelink_csv(_download(links["hello.csv"], tmp_path / "hello.csv"))
    assert take.fps == 30 and take.n_frames == csv_take.n_frames == n_frames

    # The page runs the CLI's pipeline: `talkinghead params` with the same input and options
    # writes the very same take.
    cli_json = tmp_path / "cli.json"
    r = talkinghead("params", "--audio", str(EXAMPLES / "hello.flac"), "--text-file", str(EXAMPLES / "hello.txt"),
                    "-o", str(cli_json))
    assert r.returncode == 0, r.stderr
    assert json.loads(cli_json.read_text()) == json.loads((tmp_path / "hello.json").read_text())


def _cli_sentence(*args: str, cwd: Path) -> str:
    r = talkinghead(*args, cwd=cwd)
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("talkinghead: error: "), line
    return line.removeprefix("talkinghead: error: ")


def test_bad_inputs_show_the_cli_sentences(server, browser, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo\n")
    hello = tmp_path / "hello.flac"
    shutil.copy(EXAMPLES / "hello.flac", hello)
    portrait = tmp_path / "astronaut.jpg"
    shutil.copy(EXAMPLES / "astronaut.jpg", portrait)

    # A text file as the portrait: said as soon as it is uploaded, and again on Animate.
    sentence = _cli_sentence("render", "--portrait", "notes.txt", "--audio", "hello.flac", "-o", "out.mp4",
                             cwd=tmp_path)
    assert "not an image" in sentence
    _open(browser, server)
    _upload(browser, "portrait", notes)
    _wait(lambda: _status(browser) == f"Error: {sentence}", 30, f"the upload did not say {sentence!r}")
    browser.find_element(By.ID, "animate").click()
    _wait(lambda: _status(browser) == "Error: Upload or record the speech first.", 30, "Animate did not ask for speech")
    _upload(browser, "audio", hello)
    time.sleep(2)   # the upload lands before the click
    browser.find_element(By.ID, "animate").click()
    _wait(lambda: _status(browser) == f"Error: {sentence}", 30, f"Animate did not say {sentence!r}")
    browser.save_screenshot(str(tmp_path / "bad_portrait.png"))
    assert _video_state(browser) is None

    # Speech that does not decode (a text file named .wav: the page's own type check goes by the
    # name), with a good portrait: the audio decoder's sentence.
    broken = tmp_path / "broken.wav"
    shutil.copy(notes, broken)
    sentence = _cli_sentence("render", "--portrait", "astronaut.jpg", "--audio", "broken.wav", "-o", "out.mp4",
                             cwd=tmp_path)
    assert "broken.wav" in sentence
    _open(browser, server)
    _upload(browser, "portrait", portrait)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#preview img"), 30, "the portrait was not shown")
    _upload(browser, "audio", broken)
    time.sleep(2)   # the upload lands before the click
    browser.find_element(By.ID, "animate").click()
    _wait(lambda: _status(browser) == f"Error: {sentence}", 60, f"Animate did not say {sentence!r}")
    assert _video_state(browser) is None


def test_speech_recorded_in_the_page_animates(server, browser):
    _open(browser, server)
    _upload(browser, "portrait", EXAMPLES / "astronaut.jpg")
    _set_size(browser, 256)
    browser.find_element(By.CSS_SELECTOR, "#audio button[aria-label='Record audio']").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#audio button.record-button"), 10, "no record button")
    browser.find_element(By.CSS_SELECTOR, "#audio button.record-button").click()
    time.sleep(2)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#audio button.stop-button"), 10, "no stop button")
    browser.find_element(By.CSS_SELECTOR, "#audio button.stop-button").click()
    time.sleep(2)   # the recording is uploaded
    browser.find_element(By.ID, "animate").click()
    _wait(lambda: _status(browser).startswith(("wrote", "Error")), RENDER_TIMEOUT, "the recording was not animated")
    assert _status(browser).startswith("wrote audio.mp4: "), _status(browser)
    state = _wait(lambda: (s := _video_state(browser)) and s["readyState"] >= 1 and s, 30, "no video came back")
    seconds = float(_status(browser).rsplit(", ", 1)[1].removesuffix(" s"))
    # about 2 s were recorded; a loaded machine starts the recorder late, so any clear recording counts
    assert 0.5 < seconds < 10 and abs(state["duration"] - seconds) < 0.1, (state, seconds)


def test_a_port_in_use_gets_a_sentence_not_a_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = talkinghead("ui", "--port", str(taken.getsockname()[1]), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("talkinghead: error: cannot listen on 127.0.0.1:"), r.stderr
    assert "Traceback" not in r.stderr


def test_progress_to_the_page_is_throttled_but_every_stage_gets_through():
    from talkinghead.ui import _throttled

    sent: list[str] = []
    report = _throttled(lambda fraction, stage: sent.append(stage), seconds=60)
    for n in range(1000):
        report(0.25 + 0.65 * n / 1000, f"rendering frame {n}/1000")
    report(0.9, "contact sheet and take files")
    report(0.95, "verifying the video")
    assert sent == ["rendering frame 0/1000", "contact sheet and take files", "verifying the video"]
