"""Contact sheets: the telling frames of a take side by side, to look at what was made."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkinghead.arkit import BS
from talkinghead.face.rig import Rig
from talkinghead.media import write_contact_sheet
from talkinghead.render.frames import FrameMaker
from talkinghead.track import MotionTrack


def telling_frames(track: MotionTrack) -> list[tuple[str, int]]:
    """(label, frame index) of: the most closed and the most open mouth, the most rounded lips,
    a lip closure (p/b/m), the deepest blink and the most turned head."""
    bs = track.blendshapes
    jaw, close = bs[:, BS["jawOpen"]], bs[:, BS["mouthClose"]]
    rounded = bs[:, BS["mouthPucker"]] + bs[:, BS["mouthFunnel"]]
    blink = bs[:, BS["eyeBlinkLeft"]] + bs[:, BS["eyeBlinkRight"]]
    sealed = np.where((jaw > 0.04) & (close >= 0.8 * jaw), jaw, -1.0)
    picks = [("closed", int(np.argmin(jaw + 0.5 * blink))), ("open", int(np.argmax(jaw))),
             ("rounded", int(np.argmax(rounded)))]
    if sealed.max() > 0:
        picks.append(("p/b/m", int(np.argmax(sealed))))
    picks += [("blink", int(np.argmax(blink))), ("head turned", int(np.argmax(np.abs(track.head[:, :3]).sum(1))))]
    return picks


def write_take_sheet(rig: Rig, track: MotionTrack, path: str | Path, cell: int = 256) -> Path:
    """Render the telling frames and write them as one labelled PNG."""
    picks = telling_frames(track)
    frames = FrameMaker().render(rig, [track.frame(i) for _, i in picks])      # marked, as every output is
    labels = [f"{name} {i / track.fps:.2f}s" for name, i in picks]
    return write_contact_sheet(frames, labels, path, columns=len(frames), cell=cell)
