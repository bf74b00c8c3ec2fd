"""The Blender lines the add-on is tested on, one virtual environment each.

Each line's venv (`.venv-blender-<line>` at the repository root, git-ignored) holds only that
Blender as a Python module (the `bpy` wheel, with the numpy that Blender line bundles), its few
dependencies and pytest: nothing of talkinghead's own stack. The add-on's tests
(`clients/blender/tests/`) run there as a subprocess of the main suite
(`tests/test_blender_lines.py`), against a real server in the main environment, the way a user's
Blender talks to a server. So the main environment keeps the stack a user installs (numpy 2,
OpenCV 5) and each Blender runs the numpy it ships.

    python tests/blender_lines.py [LINE ...]     # create or update the venvs (scripts/test.sh runs this)

Creating one downloads its bpy wheel (~300-400 MB; ~1 GB on disk); an up-to-date venv costs nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"            # every bpy wheel on PyPI for these lines is CPython 3.11 only
TEST_REQUIREMENTS = ("pytest>=8",)


@dataclass(frozen=True)
class BlenderLine:
    """One Blender line: what its venv installs, and which of the add-on's version-dependent code
    paths it must run (the add-on's tests assert that these, and no others, ran)."""

    name: str                          # "4.2"
    requirements: tuple[str, ...]      # pip requirements of its venv, bpy first
    actions: str                       # "legacy": action.fcurves, one action per datablock; "slotted": 4.4+
    fcurve_groups: str                 # "action_group" (4.2), "by hand" (4.4/4.5), "group_name" (5.0+)
    audio: bool = True                 # the bpy wheel has audio (Audaspace), so Bake adds a sound strip

    @property
    def venv(self) -> Path:
        return ROOT / f".venv-blender-{self.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def bpy_version(self) -> str:
        return self.requirements[0].removeprefix("bpy==")

    @property
    def stamp(self) -> Path:
        return self.venv / "talkinghead-requirements.txt"

    def wanted(self) -> str:
        return "\n".join(self.requirements + TEST_REQUIREMENTS) + "\n"

    def ready(self) -> bool:
        """The venv exists and was made from exactly these requirements."""
        return self.python.exists() and self.stamp.exists() and self.stamp.read_text() == self.wanted()


LINES: tuple[BlenderLine, ...] = (
    # 4.2 LTS: the first line with extensions. Its bpy wheel leaves numpy unpinned (pip would pick
    # numpy 2); Blender 4.2 itself bundles numpy 1.x, so pin that. The wheel has no Audaspace (the
    # Blender 4.2 application does): Bake then says it made no sound strip.
    BlenderLine("4.2", ("bpy==4.2.23", "numpy==1.26.4"), actions="legacy", fcurve_groups="action_group",
                audio=False),
    # 4.5 LTS (4.4's API: slotted actions, channelbag.fcurves.new without group_name); the wheel
    # requires numpy>=1.26,<2.
    BlenderLine("4.5", ("bpy==4.5.15",), actions="slotted", fcurve_groups="by hand"),
    BlenderLine("5.0", ("bpy==5.0.1",), actions="slotted", fcurve_groups="group_name"),
)
BY_NAME = {line.name: line for line in LINES}


def python_for_venvs() -> str | None:
    """A CPython 3.11 to make the venvs from: this one, or `python3.11` on PATH."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == PYTHON:
        return sys.executable
    return shutil.which(f"python{PYTHON}")


def ensure(line: BlenderLine) -> tuple[bool, str]:
    """Create or update the line's venv; returns (ok, a one-line report)."""
    try:
        return True, _ensure(line)
    except subprocess.CalledProcessError as e:
        return False, (f"Blender {line.name}: `{' '.join(map(str, e.cmd))}` failed (exit {e.returncode}, see "
                       f"above); check the network and run `python tests/blender_lines.py {line.name}` again")


def _ensure(line: BlenderLine) -> str:
    if line.ready():
        return f"Blender {line.name}: {line.venv.name} is up to date"
    python = python_for_venvs()
    if python is None:
        return f"Blender {line.name}: no Python {PYTHON} here (bpy needs it); its tests will be skipped"
    if not line.python.exists():
        subprocess.run([python, "-m", "venv", str(line.venv)], check=True)
    line.stamp.unlink(missing_ok=True)
    subprocess.run([str(line.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *line.requirements, *TEST_REQUIREMENTS], check=True)
    line.stamp.write_text(line.wanted())
    return f"Blender {line.name}: {line.venv.name} ready ({', '.join(line.requirements)})"


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown Blender line(s) {', '.join(unknown)}: use {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    lines = [BY_NAME[n] for n in names] if names else list(LINES)
    # The downloads are network-bound: make the venvs side by side.
    with ThreadPoolExecutor(len(lines)) as pool:
        results = list(pool.map(ensure, lines))
    for _, report in results:
        print(report)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
