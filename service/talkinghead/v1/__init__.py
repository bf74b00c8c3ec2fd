"""Generated protobuf/gRPC stubs of protos/talkinghead/v1 (written by the build: setup.py)."""
