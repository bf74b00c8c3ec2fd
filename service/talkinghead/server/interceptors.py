"""Cross-cutting call handling: token authentication, one structured log line per call, and
requests that are not valid protobuf turned into INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
import hmac
import time

import grpc
import structlog

from talkinghead.errors import OptionsError
from talkinghead.server.status import Cancelled

log = structlog.get_logger(__name__)

_MALFORMED = object()       # what a request that does not parse becomes
MALFORMED = ("a request message is not a valid protobuf message of this method's type: send it with the "
             "stubs generated from protos/talkinghead/v1/talkinghead.proto")

# Orchestrators probe these without credentials (Kubernetes, grpcurl, load balancers).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _tolerant(deserializer):
    """A deserializer that returns _MALFORMED instead of raising, so the call can answer it."""
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
            return _MALFORMED
    return parse


async def _parsed(requests):
    """A request stream whose malformed messages raise OptionsError (INVALID_ARGUMENT)."""
    async for item in requests:
        if item is _MALFORMED:
            raise OptionsError(MALFORMED)
        yield item


def _wrap(handler: grpc.RpcMethodHandler, around, deserializer=None) -> grpc.RpcMethodHandler:
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
                        request_deserializer=deserializer(handler.request_deserializer) if deserializer
                        else handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    return handler


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Every call but health and reflection must carry `authorization: Bearer <token>`.

    A call without it is answered by a request-streaming handler that reads nothing: the
    request's bytes are never buffered or parsed (an unauthenticated message costs at most the
    HTTP/2 flow-control window, not max_message_bytes)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method.startswith(OPEN_PREFIXES):
            return handler
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return handler

        log.warning("rpc.unauthenticated", method=details.method)
        if handler is None:
            return None
        message = ("missing or wrong token: send the metadata 'authorization: Bearer <token>' "
                   "with the token the server was started with (--token)")
        if handler.response_streaming:
            async def deny_stream(requests, context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                yield  # pragma: no cover - abort raises
            return grpc.stream_stream_rpc_method_handler(deny_stream, response_serializer=handler.response_serializer)

        async def deny(requests, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        return grpc.stream_unary_rpc_method_handler(deny, response_serializer=handler.response_serializer)


class LogInterceptor(grpc.aio.ServerInterceptor):
    """`rpc.request` with method, peer, status and duration when each call ends."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if method.startswith(OPEN_PREFIXES):
            return handler

        streams_in = handler is not None and handler.request_streaming

        def around(behaviour, streams_out):
            # The context is read only while the call is live: after a client cancels, grpc's
            # aio context must not be touched (peer() then crashes the process in grpcio 1.85).
            async def malformed(context):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED)

            if streams_out:
                async def logged_stream(request, context):
                    start, sent, code, peer = time.perf_counter(), 0, "OK", context.peer()
                    deadline = context.time_remaining()
                    try:
                        if request is _MALFORMED:
                            await malformed(context)
                        async for item in behaviour(_parsed(request) if streams_in else request, context):
                            sent += 1
                            yield item
                    except BaseException as exc:
                        code = _code_of(context, exc, start, deadline)
                        raise
                    finally:
                        _log(method, peer, code, start, messages=sent)
                return logged_stream

            async def logged(request, context):
                start, code, peer = time.perf_counter(), "OK", context.peer()
                deadline = context.time_remaining()
                try:
                    if request is _MALFORMED:
                        await malformed(context)
                    return await behaviour(_parsed(request) if streams_in else request, context)
                except BaseException as exc:
                    code = _code_of(context, exc, start, deadline)
                    raise
                finally:
                    _log(method, peer, code, start)
            return logged

        return _wrap(handler, around, _tolerant)


def _code_of(context, exc: BaseException, start: float, deadline: float | None) -> str:
    """The status a call ended with. A call the client cancelled, or whose deadline passed,
    ends in asyncio's CancelledError (or in our work's own Cancelled) with no code set."""
    ended_early = isinstance(exc, (asyncio.CancelledError, Cancelled))
    code = None if ended_early else context.code()
    if code is not None:
        return getattr(code, "name", str(code))
    if deadline is not None and time.perf_counter() - start >= deadline - 0.05:
        return "DEADLINE_EXCEEDED"
    return "CANCELLED" if ended_early or context.cancelled() else "UNKNOWN"


def _log(method: str, peer: str, code: str, start: float, **extra) -> None:
    log.info("rpc.request", method=method, peer=peer, status=code,
             seconds=round(time.perf_counter() - start, 4), **extra)
