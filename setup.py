"""Build step: generate the gRPC/protobuf Python stubs from protos/ (the single source of truth).

Everything else about the package is in pyproject.toml. `pip install .` and `pip install -e .`
both run build_py, which runs grpc_tools.protoc on protos/talkinghead/v1/*.proto and writes
service/talkinghead/v1/*_pb2.py, *_pb2.pyi and *_pb2_grpc.py (not committed, never hand-edited).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTOS = ROOT / "protos"
OUT = ROOT / "service"


def generate_stubs() -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "talkinghead").rglob("*.proto"))
    args = ["grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={OUT}", f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}", *files]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {files}")


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        generate_stubs()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
