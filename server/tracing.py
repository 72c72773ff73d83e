"""OpenTelemetry traces, configured only by the standard ``OTEL_*`` environment variables.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint is
set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; the exporter is then
``otlp``), unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Off, the SDK is not even
imported and every helper here is a no-op. On, the SDK reads the rest itself: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``.

Spans: one server span per RPC (opentelemetry-instrumentation-grpc's aio interceptor, which also continues
a caller's ``traceparent``), and inside it ``tokenize``, ``queue_wait``, ``onnxruntime.run`` and
``postprocess``, with the model, its version and the batch size as attributes. A batch runs rows of many
calls: each call gets its own ``queue_wait`` and ``onnxruntime.run`` spans (same times for every call of a
run), so that each trace is whole; the run spans of one batch link to the first call's run span.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneserve.server.settings import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def exporter_names(env: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """The span exporters that ``env`` asks for; empty when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and any(env.get(e) for e in _ENDPOINTS):
        names = ["otlp"]
    if "none" in names:
        return []
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    otlp = _OTLP_BY_PROTOCOL.get(protocol, f"otlp ({protocol})")
    return [otlp if n == "otlp" else n for n in names]


def configure() -> TracerProvider | None:
    """Install a tracer provider with the exporters the environment asks for (``None``: tracing is off)."""
    names = exporter_names()
    if not names:
        return None
    from importlib.metadata import entry_points

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    found = {ep.name: ep for ep in entry_points(group="opentelemetry_traces_exporter")}
    provider = TracerProvider(resource=Resource.create({"service.name": _service_name()}))
    for name in names:
        if name not in found:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed; "
                f"use one of {', '.join(sorted(found))} (OTLP over gRPC: OTEL_EXPORTER_OTLP_PROTOCOL=grpc)"
            )
        provider.add_span_processor(BatchSpanProcessor(found[name].load()()))
    from opentelemetry import trace

    trace.set_tracer_provider(provider)  # for libraries that trace too
    install(provider)
    return provider


def _service_name() -> str:
    return os.environ.get("OTEL_SERVICE_NAME") or "tuneserve"


def install(provider: TracerProvider | None) -> None:
    """Trace with ``provider`` from now on (``None``: off). Tests install one with an in-memory exporter
    (OpenTelemetry's global provider can be set only once per process, so it is not used here)."""
    global _provider, _tracer
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer("tuneserve.server")


def enabled() -> bool:
    return _tracer is not None


def server_interceptors() -> list[Any]:
    """The gRPC aio server interceptor that opens a span per RPC, when tracing is on."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider)]


def span(name: str, model: str, version: int, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one (a no-op context when tracing is off)."""
    if _tracer is None:
        return contextlib.nullcontext()
    return _tracer.start_as_current_span(name, attributes=_attrs(model, version, attributes))


def current() -> Context | None:
    """The current context, for work that another task finishes (the batcher); ``None`` when off or when
    no span is current (work outside an RPC starts no trace of its own)."""
    if _tracer is None:
        return None
    from opentelemetry import context, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return context.get_current()


def record_run(
    contexts: Sequence[Context | None],
    enqueued: Sequence[int],
    started: int,
    ended: int,
    model: str,
    version: int,
) -> None:
    """After one ONNX Runtime run: for each call of the batch (its context, its rows' queueing time, in
    ``time.time_ns()``), a ``queue_wait`` span and an ``onnxruntime.run`` span, run spans linked to the
    first call's."""
    if _tracer is None:
        return
    from opentelemetry.trace import Link

    attrs = _attrs(model, version, {"batch_size": len(contexts)})  # rows in the run
    first: Any = None
    seen: set[int] = set()
    for ctx, queued in zip(contexts, enqueued, strict=True):
        if ctx is None or id(ctx) in seen:  # several rows (texts, windows) of one call
            continue
        seen.add(id(ctx))
        # A lone row on an idle model runs at once: its queue_wait is empty, and there all the same.
        _tracer.start_span("queue_wait", ctx, attributes=attrs, start_time=queued).end(started)
        links = [Link(first)] if first is not None else None
        run = _tracer.start_span("onnxruntime.run", ctx, attributes=attrs, links=links, start_time=started)
        run.end(ended)
        if first is None:
            first = run.get_span_context()


def _attrs(model: str, version: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "tuneserve.model": model,
        "tuneserve.model.version": version,
        **{f"tuneserve.{k}": v for k, v in extra.items()},
    }
