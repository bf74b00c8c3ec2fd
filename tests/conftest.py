import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test-support modules (speech.py) import by name

from talkinghead import logs  # noqa: E402

logs.configure("debug")  # tests see (and structlog.testing.capture_logs can catch) every event


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_cuda: needs torch with a CUDA GPU (skipped without one)")
