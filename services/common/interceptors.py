"""The server interceptor every kovn service runs behind.

It does, for every call and in one place: bind a request id into the
structlog context (taken from the caller's `x-request-id` metadata or made
up) so every log line of the call carries it; count and time the call for
Prometheus; refuse new work while the server drains; and turn the project's
typed errors into gRPC status codes (anything else is a bug: INTERNAL,
logged with its traceback).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from services.common.errors import FIELD_METADATA_KEY, KovnError
from services.common.grpc_types import Context, MethodHandler
from services.common.logging import get_logger
from services.common.metrics import GRPC_IN_FLIGHT, GRPC_LATENCY, GRPC_REQUESTS

log = get_logger(__name__)

REQUEST_ID_KEY = "x-request-id"
# Calls that must keep working while draining: probes and reflection.
ALWAYS_ALLOWED = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServerState:
    """What the interceptor needs to know about the server it runs in."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.draining = False
        self.in_flight = 0
        self._idle: list[Callable[[], None]] = []
        self._gauge = GRPC_IN_FLIGHT.labels(service)

    def on_idle(self, callback: Callable[[], None]) -> None:
        self._idle.append(callback)

    def enter(self) -> None:
        # Probes and reflection are not counted: a health Watch stream may stay
        # open for the life of the server and must not hold up draining.
        self.in_flight += 1
        self._gauge.inc()

    def leave(self) -> None:
        self.in_flight -= 1
        self._gauge.dec()
        if self.in_flight == 0:
            for callback in self._idle:
                callback()


def _request_id(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            return value if isinstance(value, str) else value.decode()
    return os.urandom(8).hex()


class ChassisInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, state: ServerState) -> None:
        self.state = state
        # Wrapping is per method, not per call: the registered handler for a
        # method never changes, so its wrapper is built once and reused.
        self._wrapped: dict[str, tuple[MethodHandler, MethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: MethodHandler) -> MethodHandler:
        call = _Method(self.state, method, method.startswith(ALWAYS_ALLOWED))
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.wrap_stream(handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.wrap_unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            call.wrap_stream(handler.stream_stream),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Method:
    """One method's wrapper: context, metrics, error mapping for each call."""

    def __init__(self, state: ServerState, method: str, exempt: bool) -> None:
        self.state = state
        self.method = method
        self.short = method.rsplit("/", 1)[-1]
        self.exempt = exempt
        self._latency = GRPC_LATENCY.labels(state.service, self.short)
        self._counts: dict[str, Any] = {}

    async def _before(self, context: Context, request_id: str) -> None:
        if self.state.draining and not self.exempt:
            await _abort(
                context,
                request_id,
                grpc.StatusCode.UNAVAILABLE,
                "server is shutting down; retry on another replica",
            )

    async def _on_error(self, context: Context, request_id: str, err: BaseException) -> None:
        if isinstance(err, KovnError):
            log.info("request failed", code=err.code.name, error=str(err))
            await _abort(context, request_id, err.code, str(err), err.field)
        log.exception("bug: unexpected error", error_type=type(err).__name__)
        await _abort(
            context,
            request_id,
            grpc.StatusCode.INTERNAL,
            f"internal error ({type(err).__name__}); request id {request_id}",
        )

    def _finish(self, context: Context, started: float) -> None:
        code = context.code() or grpc.StatusCode.OK
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        counter = self._counts.get(name)
        if counter is None:
            counter = GRPC_REQUESTS.labels(self.state.service, self.short, name)
            self._counts[name] = counter
        counter.inc()
        self._latency.observe(time.perf_counter() - started)

    def wrap_unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: Context) -> Any:
            async with _Call(self, context) as request_id:
                await self._before(context, request_id)
                return await inner(request, context)

        return handle

    def wrap_stream(
        self, inner: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
            async with _Call(self, context) as request_id:
                await self._before(context, request_id)
                async for item in inner(request, context):
                    yield item

        return handle


class _Call:
    """One call's bookkeeping, the same for unary and streaming handlers:
    request id bound into the log context and sent back as a trailer,
    in-flight count, metrics, and errors turned into status codes on the way out."""

    __slots__ = ("_tokens", "context", "method", "request_id", "started")

    def __init__(self, method: _Method, context: Context) -> None:
        self.method = method
        self.context = context
        self.started = time.perf_counter()
        self.request_id = _request_id(context)

    async def __aenter__(self) -> str:
        method = self.method
        if not method.exempt:
            method.state.enter()
        self._tokens = structlog.contextvars.bind_contextvars(
            request_id=self.request_id, method=method.method
        )
        self.context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        return self.request_id

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        method = self.method
        try:
            if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
                await method._on_error(self.context, self.request_id, exc)  # raises AbortError
        finally:
            method._finish(self.context, self.started)
            if not method.exempt:
                method.state.leave()
            structlog.contextvars.reset_contextvars(**self._tokens)


async def _abort(
    context: Context,
    request_id: str,
    code: grpc.StatusCode,
    message: str,
    field: str | None = None,
) -> None:
    trailers: list[tuple[str, str]] = [(REQUEST_ID_KEY, request_id)]
    if field:
        trailers.append((FIELD_METADATA_KEY, field))
    await context.abort(code, message, tuple(trailers))
