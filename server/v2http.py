"""The Open Inference Protocol (KServe V2) over HTTP/REST, on ``--http-port``.

aiohttp's web server: a well-kept asyncio server that runs on the gRPC server's own event loop (no thread,
no second loop, no ASGI server process to manage), so a call goes through the same ``DataPlane`` and batcher
as gRPC's. Each route builds the ``inference`` protobuf request (``v2json.py``) and calls
``OpenInferenceServicer``: validation, messages and answers are gRPC's. Every call also goes through
``ServerInterceptor.begin``/``finish``: the same bearer tokens (``authorization: Bearer`` header), the same
drain (new calls 503; live, ready and model ready still answer, ready false) and the same request metrics,
labelled with the gRPC method name (``ModelInfer``, ...). The gRPC port is untouched by any of this.

    GET  /v2/health/live, /v2/health/ready          200, or 400 when not live/ready ({"live"|"ready": bool})
    GET  /v2                                        server metadata
    GET  /v2/models/{name}[/versions/{v}]           model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready     200, or 400 when not ready
    POST /v2/models/{name}[/versions/{v}]/infer     inference (JSON tensors)

Errors answer ``{"error": "<message>"}`` with the HTTP status of the gRPC status (``STATUS``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from aiohttp import web

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.server import v2json
from tuneserve.server.errors import InvalidInput, TuneserveError, from_store_error
from tuneserve.server.interceptors import ServerInterceptor
from tuneserve.server.openinference import SERVICE, OpenInferenceServicer

log = structlog.get_logger("tuneserve.server.http")
HEADER_LENGTH = "Inference-Header-Content-Length"  # Triton's binary tensor extension (``v2json.py``)

# gRPC status → HTTP status, as grpc-gateway and Google's APIs map them.
STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class _NoDeadline:
    """The part of a gRPC servicer context that ``OpenInferenceServicer`` reads: HTTP calls carry no
    deadline."""

    def time_remaining(self) -> float | None:
        return None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(), status=status, content_type="application/json"
    )


def _error(code: grpc.StatusCode, message: str) -> web.Response:
    response = _json({"error": message}, STATUS.get(code, 500))
    if code is grpc.StatusCode.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, a body over the limit) as ``{"error": ...}``."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json({"error": f"{exc.reason}: {request.method} {request.path}"}, exc.status)


class V2HTTP:
    """The REST routes over ``servicer``, with ``interceptor``'s auth, drain and metrics."""

    def __init__(
        self, servicer: OpenInferenceServicer, interceptor: ServerInterceptor, max_body_bytes: int
    ) -> None:
        self.servicer = servicer
        self.interceptor = interceptor
        self.app = web.Application(client_max_size=max_body_bytes, middlewares=[_json_errors])
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            self.app.router.add_get(base, self.model_metadata)
            self.app.router.add_get(base + "/ready", self.model_ready)
            self.app.router.add_post(base + "/infer", self.infer)
        self.app.router.add_get("/v2/health/live", self.live)
        self.app.router.add_get("/v2/health/ready", self.ready)
        self.app.router.add_get("/v2", self.server_metadata)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Listen on ``host``:``port`` (``[::]`` or ``::``: every interface, IPv4 included)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        bind = None if host.strip("[]") == "::" else host.strip("[]")
        try:
            await web.TCPSite(self._runner, bind, port, ssl_context=ssl_context, reuse_port=False).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(f"cannot listen on {host}:{port} for HTTP (is the port in use?): {exc}") from exc

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _rpc(
        self, request: web.Request, method: str, model: str, run: Callable[[], Awaitable[web.Response]]
    ) -> web.Response:
        """Run one call as the gRPC interceptor runs ``method``: auth, drain, errors and metrics."""
        header = request.headers.get("Authorization")

        def metadata() -> list[tuple[str, str]]:
            return [] if header is None else [("authorization", header)]

        try:
            call = self.interceptor.begin(
                f"/{SERVICE}/{method}",
                self.interceptor.model_label(model),
                metadata,
                lambda: str(request.remote),
            )
        except TuneserveError as exc:
            return _error(exc.code, exc.message)
        try:
            return await run()
        except web.HTTPException as exc:  # aiohttp's: a body over --max-message-bytes
            call.code = (
                grpc.StatusCode.RESOURCE_EXHAUSTED if exc.status == 413 else grpc.StatusCode.INVALID_ARGUMENT
            )
            limit = " (the limit is --max-message-bytes)" if exc.status == 413 else ""
            return _json({"error": f"{exc.reason}{limit}"}, exc.status)
        except asyncio.CancelledError:  # the client went away
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            exc = from_store_error(exc)
            if isinstance(exc, TuneserveError):
                call.code = exc.code
                log.warning(
                    "http call failed", method=method, model=call.model, code=exc.code.name, error=exc.message
                )
                return _error(exc.code, exc.message)
            request_id = uuid.uuid4().hex[:12]
            call.code = grpc.StatusCode.INTERNAL
            log.error(
                "http call crashed", method=method, model=call.model, request_id=request_id, exc_info=exc
            )
            return _error(
                grpc.StatusCode.INTERNAL,
                f"internal server error (request id {request_id}); the server log has the details",
            )
        finally:
            self.interceptor.finish(call)

    async def live(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            answer = await self.servicer.ServerLive(pb.ServerLiveRequest(), _NoDeadline())  # type: ignore[arg-type]
            return _json({"live": answer.live}, 200 if answer.live else 400)

        return await self._rpc(request, "ServerLive", "", run)

    async def ready(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            answer = await self.servicer.ServerReady(pb.ServerReadyRequest(), _NoDeadline())  # type: ignore[arg-type]
            return _json({"ready": answer.ready}, 200 if answer.ready else 400)

        return await self._rpc(request, "ServerReady", "", run)

    async def server_metadata(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            answer = await self.servicer.ServerMetadata(pb.ServerMetadataRequest(), _NoDeadline())  # type: ignore[arg-type]
            return _json(v2json.server_metadata(answer))

        return await self._rpc(request, "ServerMetadata", "", run)

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def run() -> web.Response:
            message = pb.ModelMetadataRequest(name=name, version=version)
            answer = await self.servicer.ModelMetadata(message, _NoDeadline())  # type: ignore[arg-type]
            return _json(v2json.model_metadata(answer))

        return await self._rpc(request, "ModelMetadata", name, run)

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def run() -> web.Response:
            message = pb.ModelReadyRequest(name=name, version=version)
            answer = await self.servicer.ModelReady(message, _NoDeadline())  # type: ignore[arg-type]
            return _json({"name": name, "ready": answer.ready}, 200 if answer.ready else 400)

        return await self._rpc(request, "ModelReady", name, run)

    async def infer(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def run() -> web.Response:
            body = await request.read()
            header = request.headers.get(HEADER_LENGTH)
            size = len(body)
            if header is not None:
                if not header.isdigit() or int(header) > len(body):
                    raise InvalidInput(f"{HEADER_LENGTH} {header[:20]!r} is not a length within the body")
                size = int(header)
            try:
                parsed = json.loads(body[:size])
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"the body is not JSON ({exc}); {v2json.BODY}") from None
            message, binary = v2json.infer_request(parsed, body[size:], name, version)
            answer = await self.servicer.ModelInfer(message, _NoDeadline())  # type: ignore[arg-type]
            head, data = v2json.infer_response(answer, binary)
            if not any("parameters" in out for out in head["outputs"]):
                return _json(head)
            encoded = json.dumps(head, ensure_ascii=False).encode()
            return web.Response(
                body=encoded + data,
                content_type="application/octet-stream",
                headers={HEADER_LENGTH: str(len(encoded))},
            )

        return await self._rpc(request, "ModelInfer", name, run)
