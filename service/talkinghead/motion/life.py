"""Everything but the lips, as one causal stage: `Life` runs the eyes, the head, the brows and the
emotion frame by frame, continuous across a take, a stream's utterances and its idle spells.

Each part draws from its own random generator, spawned from `MotionOptions.seed`: the same calls
with the same speech give the same frames, and the life does not depend on how the frames were
asked for (a whole take at once, or a stream chunk by chunk).
"""

from __future__ import annotations

import numpy as np

from talkinghead.audio.prosody import Nucleus
from talkinghead.motion.expression import Brows, Emotion
from talkinghead.motion.eyes import EyeLookahead, Eyes
from talkinghead.motion.head import Head
from talkinghead.motion.options import MotionOptions


class Life:
    def __init__(self, options: MotionOptions, seed: np.random.SeedSequence) -> None:
        eyes, head, brows, emotion = seed.spawn(4)
        self._fps = options.fps
        self._eyes = Eyes(options, options.fps, eyes)
        self._head = Head(options, options.fps, head)
        self._brows = Brows(options, brows)
        self._emotion = Emotion(options, options.fps, emotion)

    def look_ahead(self, lookahead: EyeLookahead) -> None:
        """What a take knows of its future (see EyeLookahead)."""
        self._eyes.look_ahead(lookahead)

    def nucleus(self, nucleus: Nucleus, offset: float, earliest: float) -> None:
        """A syllable nucleus (its time + offset = stream time, s): a nod, and on an accent maybe a
        sweep and a brow raise, starting no earlier than `earliest` (the first frame not yet made)."""
        t = nucleus.t + offset
        self._head.nucleus(t, nucleus.strength, nucleus.accent, earliest)
        if nucleus.accent:
            self._brows.accent(t, earliest)

    def frames(self, i0: int, speaking: np.ndarray, f0: np.ndarray | None = None,
               median_f0: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blendshapes (n, 52) without lips, head (n, 6), gaze (n, 4)) for frames i0..i0+n-1,
        continuing the last call. speaking: shape = (n,) bool; f0: Hz per frame and the speaker's
        median, for the brows' pitch lift (None in silence)."""
        t = (i0 + np.arange(len(speaking))) / self._fps
        eye_shapes, gaze, _ = self._eyes.frames(i0, speaking)
        head = self._head.frames(t, speaking)
        face = eye_shapes + self._brows.frames(t, f0, median_f0) + self._emotion.frames(len(t))
        return face, head, gaze
