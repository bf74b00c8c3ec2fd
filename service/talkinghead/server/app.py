"""The gRPC server (grpc.aio): `start_server(config) -> RunningServer`, `serve(config)` to run
until SIGTERM/SIGINT. Health checking (grpc.health.v1) and reflection are open to all; every
other call needs the token when one is set. TLS, or mutual TLS with a client CA, on request.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from talkinghead.errors import OptionsError
from talkinghead.server.interceptors import AuthInterceptor, LogInterceptor
from talkinghead.server.limits import Limits
from talkinghead.server.servicer import TalkingHeadServicer
from talkinghead.v1 import talkinghead_pb2 as pb
from talkinghead.v1 import talkinghead_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TalkingHead"].full_name   # "talkinghead.v1.TalkingHead"


@dataclass(frozen=True)
class ServerConfig:
    """How to run the server. Paths are PEM files."""

    host: str = "127.0.0.1"
    port: int = 50051                  # 0 = any free port (tests)
    token: str | None = None           # require `authorization: Bearer <token>` on every call
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None      # with TLS: require client certificates signed by this CA
    workers: int = 4                   # threads for rendering, encoding and the streaming motion
    renderer: str = "cpu"              # Generate's renderer: "cpu", "torch" or "auto" (torch on CUDA)
    watermark_operator: int = 0        # the operator id in every served image's watermark
    grace_seconds: float = 30.0        # SIGTERM: how long in-flight calls may finish
    limits: Limits = field(default_factory=Limits)

    def credentials(self) -> grpc.ServerCredentials | None:
        if not (self.tls_cert or self.tls_key):
            if self.client_ca:
                raise OptionsError("--client-ca needs TLS: pass --tls-cert and --tls-key too")
            return None
        if not (self.tls_cert and self.tls_key):
            raise OptionsError("TLS needs both --tls-cert and --tls-key (PEM files)")
        try:
            cert, key = Path(self.tls_cert).read_bytes(), Path(self.tls_key).read_bytes()
            ca = Path(self.client_ca).read_bytes() if self.client_ca else None
        except OSError as exc:
            raise OptionsError(f"cannot read a TLS file: {exc}; pass readable PEM files") from exc
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    servicer: TalkingHeadServicer
    health: object

    async def stop(self, grace: float | None = 5.0) -> None:
        await _set_serving(self.health, False)
        await self.server.stop(grace)
        self.servicer.pool.shutdown(wait=False, cancel_futures=True)
        self.servicer.workers.close()
        if self.servicer.images is not None:
            self.servicer.images.close()


async def _set_serving(servicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", SERVICE_NAME):
        result = servicer.set(name, status)
        if asyncio.iscoroutine(result):
            await result


async def start_server(config: ServerConfig = ServerConfig()) -> RunningServer:
    """Start serving; returns at once with the bound port."""
    interceptors = [LogInterceptor()] + ([AuthInterceptor(config.token)] if config.token else [])
    size = config.limits.max_message_bytes
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
        ("grpc.so_reuseport", 0)])
    servicer = TalkingHeadServicer(config.limits, config.workers, config.renderer, config.watermark_operator)
    pb_grpc.add_TalkingHeadServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    creds = config.credentials()
    try:
        port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OptionsError(f"cannot listen on {address}: {exc}; pick another --port") from exc
    if port == 0:
        raise OptionsError(f"cannot listen on {address} (in use?): pick another --port")
    await server.start()
    await _set_serving(health_servicer, True)
    log.info("server.started", address=f"{config.host}:{port}", tls=creds is not None,
             mtls=config.client_ca is not None, auth=config.token is not None)
    return RunningServer(server, port, servicer, health_servicer)


async def serve(config: ServerConfig = ServerConfig()) -> None:
    """Run until SIGTERM or SIGINT, then stop taking calls and let in-flight ones finish
    (up to `grace_seconds`)."""
    running = await start_server(config)
    running.servicer.workers.prestart()       # warm analysis processes before the first call
    if running.servicer.images is not None:   # and the image processes, in the background
        warming = asyncio.ensure_future(running.servicer.images.ready())
        warming.add_done_callback(lambda done: done.cancelled() or done.exception())   # failures: the first stream says
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("server.draining", in_flight=running.servicer.slots.in_flight, grace_s=config.grace_seconds)
    await running.stop(config.grace_seconds)
    # gRPC's own per-call tasks can outlive stop() by a few ms when the grace ran out (the core's
    # calls are cancelled, the handler is still unwinding); asyncio.run would then cancel them and
    # gRPC prints a CancelledError traceback. Let them end on their own, briefly.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=0.5)
    log.info("server.stopped")
