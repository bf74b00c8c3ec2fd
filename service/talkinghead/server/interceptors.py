"""Cross-cutting call handling: token authentication and one structured log line per call."""

from __future__ import annotations

import hmac
import time

import grpc
import structlog

log = structlog.get_logger(__name__)

# Orchestrators probe these without credentials (Kubernetes, grpcurl, load balancers).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _wrap(handler: grpc.RpcMethodHandler, around) -> grpc.RpcMethodHandler:
    """The same kind of handler (unary/stream in and out) with its behaviour wrapped."""
    if handler is None:
        return None
    for kind, make in (("unary_unary", grpc.unary_unary_rpc_method_handler),
                       ("unary_stream", grpc.unary_stream_rpc_method_handler),
                       ("stream_unary", grpc.stream_unary_rpc_method_handler),
                       ("stream_stream", grpc.stream_stream_rpc_method_handler)):
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return make(around(behaviour, kind.endswith("stream")),
                        request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    return handler


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Every call but health and reflection must carry `authorization: Bearer <token>`."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method.startswith(OPEN_PREFIXES):
            return handler
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return handler

        def around(behaviour, streams_out):
            message = ("missing or wrong token: send the metadata 'authorization: Bearer <token>' "
                       "with the token the server was started with (--token)")
            if streams_out:
                async def deny_stream(request, context):
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                    yield  # pragma: no cover - abort raises
                return deny_stream

            async def deny(request, context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            return deny

        log.warning("rpc.unauthenticated", method=details.method)
        return _wrap(handler, around)


class LogInterceptor(grpc.aio.ServerInterceptor):
    """`rpc.request` with method, peer, status and duration when each call ends."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if method.startswith(OPEN_PREFIXES):
            return handler

        def around(behaviour, streams_out):
            # The context is read only while the call is live: after a client cancels, grpc's
            # aio context must not be touched (peer() then crashes the process in grpcio 1.85).
            if streams_out:
                async def logged_stream(request, context):
                    start, sent, code, peer = time.perf_counter(), 0, "OK", context.peer()
                    try:
                        async for item in behaviour(request, context):
                            sent += 1
                            yield item
                    except BaseException as exc:
                        code = _code_of(context, exc)
                        raise
                    finally:
                        _log(method, peer, code, start, messages=sent)
                return logged_stream

            async def logged(request, context):
                start, code, peer = time.perf_counter(), "OK", context.peer()
                try:
                    return await behaviour(request, context)
                except BaseException as exc:
                    code = _code_of(context, exc)
                    raise
                finally:
                    _log(method, peer, code, start)
            return logged

        return _wrap(handler, around)


def _code_of(context, exc: BaseException) -> str:
    if type(exc).__name__ == "CancelledError":
        return "CANCELLED"
    code = context.code()
    return getattr(code, "name", str(code)) if code is not None else "UNKNOWN"


def _log(method: str, peer: str, code: str, start: float, **extra) -> None:
    log.info("rpc.request", method=method, peer=peer, status=code,
             seconds=round(time.perf_counter() - start, 4), **extra)
