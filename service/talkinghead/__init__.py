"""talkinghead: one portrait photo + speech audio -> a talking face (frames and ARKit parameters)."""

from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.track import FaceParams, MotionTrack

__version__ = "0.1.0"
__all__ = ["BLENDSHAPE_NAMES", "VISEMES", "FaceParams", "MotionTrack", "__version__"]
