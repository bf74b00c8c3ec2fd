"""The gRPC service (grpc.aio): `start_server(config) -> RunningServer`, `serve(config)` to run
until SIGTERM/SIGINT (both in `app.py`), the servicer, avatars cache, limits, interceptors.

grpc is imported only when the server is used: the offline commands (params, render) never pay
for it.
"""

from __future__ import annotations

_APP = ("RunningServer", "ServerConfig", "SERVICE_NAME", "serve", "start_server")


def __getattr__(name: str):
    if name in _APP:
        from talkinghead.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'talkinghead.server' has no attribute {name!r}")
