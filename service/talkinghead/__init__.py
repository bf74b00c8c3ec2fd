"""talkinghead: one portrait photo + speech audio -> a talking face (frames and ARKit parameters)."""

import structlog

from talkinghead import logs
from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.track import FaceParams, MotionTrack

__version__ = "0.1.0"

if not structlog.is_configured():
    # structlog's unconfigured default prints every level to stdout; a library used from Python
    # should only speak up for warnings, on stderr. Applications configure their own (or call
    # talkinghead.logs.configure) and this steps aside.
    logs.configure("warning")
__all__ = ["BLENDSHAPE_NAMES", "VISEMES", "FaceParams", "MotionTrack", "__version__"]
