"""Regenerate the gRPC stubs from protos/ in place, as `pip install -e .` does, without
reinstalling: for a developer who edits the .proto.

    pip install grpcio-tools==1.85.1   # the build's own protoc (pyproject's build-system)
    python scripts/gen_stubs.py
"""

import runpy
import sys
from pathlib import Path

sys.argv = ["setup.py", "--name"]          # a harmless setup() command: setup.py is run for its function
ns = runpy.run_path(str(Path(__file__).resolve().parents[1] / "setup.py"), run_name="not_main")
ns["generate_stubs"]()
