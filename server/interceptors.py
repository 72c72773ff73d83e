"""The one place where errors become gRPC statuses, plus per-RPC metrics, request logs and drain.

- ``TuneserveError`` → its ``code`` and message, as is (logged at warning).
- ``asyncio.CancelledError`` → re-raised (the client cancelled, or its deadline passed); counted as
  CANCELLED or DEADLINE_EXCEEDED.
- anything else → INTERNAL with a generic message; the traceback is logged with a request id that the
  message quotes.

While draining (after SIGTERM), new calls are refused with UNAVAILABLE; health and reflection are not
intercepted, so probes see NOT_SERVING rather than an error (the Open Inference Protocol's ServerLive,
ServerReady and ModelReady are intercepted but still answered, with ready false). With tokens configured,
each call's bearer token is checked (``auth.py``) before it runs: UNAUTHENTICATED or PERMISSION_DENIED,
counted like any other status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from tuneserve.server.auth import Authenticator
from tuneserve.server.decoding import parse_in_handler
from tuneserve.server.errors import ModelNotReady, TuneserveError, from_store_error
from tuneserve.server.metrics import CURRENT_CALL, UNKNOWN_MODEL, Metrics

LOG_NAME = "tuneserve.server.rpc"
log = structlog.get_logger(LOG_NAME)
_PASS_THROUGH = ("/grpc.health.", "/grpc.reflection.")
# The Open Inference Protocol's health RPCs still answer while draining (ServerReady and ModelReady then say
# false), so that a V2 probe sees "not ready" rather than an error, as grpc.health probes do.
_ANSWERED_WHILE_DRAINING = frozenset(
    f"/inference.GRPCInferenceService/{m}" for m in ("ServerLive", "ServerReady", "ModelReady")
)


class Traffic:
    """In-flight calls and the draining flag, shared by the interceptor and shutdown."""

    def __init__(self) -> None:
        self.draining = False
        self.drain_started = asyncio.Event()  # open streams watch it and end (``streams.py``)
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start_draining(self) -> None:
        """Refuse new calls from now on, and tell open streams to end."""
        self.draining = True
        self.drain_started.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def stop_waiting(self) -> None:
        """Make ``wait_idle`` return now (a second SIGTERM)."""
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return self.in_flight == 0


class Call:
    """Bookkeeping of one RPC: status code, model label, timing."""

    def __init__(self, method: str, model: str) -> None:
        self.method = method
        self.model = model
        self.version = ""  # the model version that answered (``metrics.answered_by``)
        self.code = grpc.StatusCode.OK
        self.start = time.perf_counter()


class _Accounted:
    """``async with`` around a handler: maps what it raised to the call's status (``_settle``) and counts
    the call when it ends. A class, not ``@contextlib.asynccontextmanager``: it is entered on every call,
    and the generator-based one costs a generator and more awaits each time."""

    __slots__ = ("call", "context", "interceptor")

    def __init__(
        self, interceptor: ServerInterceptor, call: Call, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self.interceptor = interceptor
        self.call = call
        self.context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        try:
            if exc is not None:
                await self.interceptor._settle(self.call, exc, self.context)
        finally:
            self.interceptor.finish(self.call)
        return False  # what the handler raised goes on (or the abort that _settle raised instead)


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        metrics: Metrics,
        traffic: Traffic,
        is_known_model: Callable[[str], bool],
        auth: Authenticator | None = None,
    ) -> None:
        self.metrics = metrics
        self.traffic = traffic
        self.is_known_model = is_known_model
        self.auth = auth  # None: no tokens configured, nothing to check
        self._debug = logging.getLogger(LOG_NAME).isEnabledFor(logging.DEBUG)  # per-request lines cost µs
        # grpc.aio asks the interceptor for every call; the services are fixed once the server has started,
        # so each method's wrapped handler is built once.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        full = handler_call_details.method
        handler = self._handlers.get(full)
        if handler is None:
            handler = await continuation(handler_call_details)
            if handler is None:  # an unknown method: not cached, since any name can be asked for
                return None
            handler = self._handlers[full] = parse_in_handler(self._wrap(full, handler))
        return handler

    def _wrap(self, full: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if full.startswith(_PASS_THROUGH):
            return handler
        h: Any = handler
        if h.unary_unary:
            return h._replace(unary_unary=self._unary(full, h.unary_unary))
        if h.unary_stream:
            return h._replace(unary_stream=self._unary_stream(full, h.unary_stream))
        if h.stream_unary:
            return h._replace(stream_unary=self._stream_unary(full, h.stream_unary))
        return h._replace(stream_stream=self._stream_stream(full, h.stream_stream))

    def _model_label(self, request: Any) -> str:
        name = (
            getattr(request, "model", None)
            or getattr(request, "name", None)
            or getattr(request, "model_name", None)  # the Open Inference Protocol's ModelInfer
            or ""
        )
        return self.model_label(name)

    def model_label(self, name: str) -> str:
        """The ``model`` label for a call naming ``name`` (``_unknown`` for names not served here)."""
        if not name:
            return ""
        return name if self.is_known_model(name) else UNKNOWN_MODEL

    def _begin(self, full: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
        return self.begin(full, self._model_label(request), context.invocation_metadata, context.peer)

    def begin(self, full: str, model: str, metadata: Callable[[], Any], peer: Callable[[], str]) -> Call:
        """Start the bookkeeping of a call to ``full`` (``/package.Service/Method``), or raise (counted) if
        draining or the token in ``metadata()`` does not allow it. Also used by the HTTP front end
        (``v2http.py``), so that its calls are refused, counted and drained as gRPC's are."""
        call = Call(full.rsplit("/", 1)[-1], model)
        if self.traffic.draining and full not in _ANSWERED_WHILE_DRAINING:
            call.code = grpc.StatusCode.UNAVAILABLE
            self.finish(call, counted=False)
            raise ModelNotReady(
                "the server is shutting down: retry, another replica (or this one after its "
                "restart) will answer"
            )
        if self.auth is not None:
            try:
                self.auth.check(full, metadata())
            except TuneserveError as exc:
                call.code = exc.code
                self.finish(call, counted=False)
                log.warning(
                    "rpc refused",
                    method=call.method,
                    code=exc.code.name,
                    error=exc.message,
                    peer=peer(),
                )
                raise
        self.traffic.enter()
        self.metrics.in_flight.inc()
        CURRENT_CALL.set(call)
        return call

    async def _fail(
        self, call: Call, exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Map ``exc`` to a status and abort the call with it (``context.abort`` raises)."""
        exc = from_store_error(exc)
        if isinstance(exc, TuneserveError):
            call.code = exc.code
            log.warning(
                "rpc failed", method=call.method, model=call.model, code=exc.code.name, error=exc.message
            )
            await context.abort(exc.code, exc.message)
        request_id = uuid.uuid4().hex[:12]
        call.code = grpc.StatusCode.INTERNAL
        log.error("rpc crashed", method=call.method, model=call.model, request_id=request_id, exc_info=exc)
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"internal server error (request id {request_id}); the server log has the details",
        )

    def _cancelled(self, call: Call, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        call.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED

    def finish(self, call: Call, counted: bool = True) -> None:
        """Count the call that ``begin`` started (``counted``: it entered the in-flight count)."""
        if counted:
            self.traffic.leave()
            self.metrics.in_flight.dec()
        seconds = time.perf_counter() - call.start
        self.metrics.requests.labels(call.method, call.model, call.version, call.code.name).inc()
        self.metrics.request_duration.labels(call.method, call.model, call.version).observe(seconds)
        if self._debug:
            log.debug(
                "rpc", method=call.method, model=call.model, code=call.code.name, ms=round(seconds * 1e3, 3)
            )

    async def _settle(
        self, call: Call, exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Record on ``call`` the status that ``exc``, raised by the handler, ends it with. For the handler's
        own errors this aborts the call with the mapped status (which raises ``AbortError``)."""
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled(call, context)
        elif isinstance(exc, grpc.aio.AbortError):
            call.code = context.code() or grpc.StatusCode.UNKNOWN
        elif isinstance(exc, Exception):
            await self._fail(call, exc, context)

    def _unary(self, full: str, behavior: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = await self._guard(full, request, context)
            async with _Accounted(self, call, context):
                return await behavior(request, context)

        return wrapped

    def _unary_stream(self, full: str, behavior: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            call = await self._guard(full, request, context)
            async with _Accounted(self, call, context):
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):
                    async for response in result:
                        yield response
                else:
                    await result

        return wrapped

    def _stream_unary(self, full: str, behavior: Any) -> Any:
        async def wrapped(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = await self._guard(full, None, context)
            async with _Accounted(self, call, context):
                return await behavior(self._labelled(call, requests), context)

        return wrapped

    def _stream_stream(self, full: str, behavior: Any) -> Any:
        async def wrapped(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            call = await self._guard(full, None, context)
            async with _Accounted(self, call, context):
                async for response in behavior(self._labelled(call, requests), context):
                    yield response

        return wrapped

    async def _guard(self, full: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
        try:
            return self._begin(full, request, context)
        except TuneserveError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    async def _labelled(self, call: Call, requests: Any) -> AsyncIterator[Any]:
        """The request stream, labelling the call with the first request's model."""
        async for request in requests:
            if not call.model:
                call.model = self._model_label(request)
            yield request
