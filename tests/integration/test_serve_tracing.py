"""OpenTelemetry traces of a live server: one trace per request, with the data plane's spans in it.

The server runs in this process (an ``App`` on a loopback port, as ``tuneserve serve`` builds it), so that
its spans go to OpenTelemetry's own test exporter, ``InMemorySpanExporter``. That tracing is off without
``OTEL_*`` variables is checked on the shared subprocess server: it never even imports OpenTelemetry.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from tuneserve.oip import open_inference_grpc_pb2 as oip
from tuneserve.oip import open_inference_grpc_pb2_grpc as oip_grpc
from tuneserve.server import tracing
from tuneserve.server.app import App
from tuneserve.server.settings import Settings
from tuneserve.v1 import inference_pb2, inference_pb2_grpc, model_pb2

from .live import ServerProcess

ROUNDS = 10
CHILDREN = {"tokenize", "queue_wait", "onnxruntime.run", "postprocess"}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    yield spans
    tracing.install(None)
    provider.shutdown()


async def _serve(model_store: Path, calls: Any, max_wait_us: int = 2000) -> None:
    """Start an App on a loopback port, run ``calls(channel)``, drain it."""
    settings = Settings.load(
        model_root=str(model_store),
        host="127.0.0.1",
        port=0,
        metrics_host="127.0.0.1",
        metrics_port=0,
        intra_op_threads=1,
        training={"enabled": False},
        batch={"max_wait_us": max_wait_us},
    )
    app = App(settings, CollectorRegistry())
    await app.start()
    try:
        await app.load()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await calls(channel)
    finally:
        await app.drain()


def _traces(spans: tuple[ReadableSpan, ...]) -> dict[int, list[ReadableSpan]]:
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.context.trace_id].append(span)
    return by_trace


def test_one_trace_per_request_with_the_data_plane_spans(
    model_store: Path, exporter: InMemorySpanExporter
) -> None:
    async def calls(channel: grpc.aio.Channel) -> None:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await stub.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["good", "bad"]))
        await stub.ExtractEntities(
            inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=["Ada Lovelace in London"])
        )
        tensor = oip.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[1], contents={"bytes_contents": [b"fine"]}
        )
        await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            oip.ModelInferRequest(model_name="tiny-sentiment", inputs=[tensor])
        )

    asyncio.run(_serve(model_store, calls))
    traces = _traces(exporter.get_finished_spans())
    assert len(traces) == 3
    for spans in traces.values():
        (root,) = [s for s in spans if s.parent is None]
        assert root.name in {
            "/tuneserve.v1.InferenceService/Classify",
            "/tuneserve.v1.InferenceService/ExtractEntities",
            "/inference.GRPCInferenceService/ModelInfer",
        }
        children = {s.name: s for s in spans if s.parent is not None}
        assert set(children) == CHILDREN, [s.name for s in spans]
        assert len(spans) == 1 + len(CHILDREN)  # one of each, even for a call of several texts
        model = "tiny-ner" if root.name.endswith("ExtractEntities") else "tiny-sentiment"
        for child in children.values():
            assert child.parent is not None and child.parent.span_id == root.context.span_id
            assert child.attributes is not None
            assert child.attributes["tuneserve.model"] == model
            assert child.attributes["tuneserve.model.version"] == 1
        run = children["onnxruntime.run"]
        assert run.attributes is not None and run.attributes["tuneserve.batch_size"] >= 1
        assert children["tokenize"].attributes["tuneserve.input_tokens"] > 0  # type: ignore[index]
        for name in ("queue_wait", "onnxruntime.run"):  # inside the RPC's span
            assert root.start_time <= children[name].start_time <= children[name].end_time <= root.end_time
    classify = next(s for s in traces.values() if any(x.name.endswith("Classify") for x in s))
    run = next(s for s in classify if s.name == "onnxruntime.run")
    assert run.attributes["tuneserve.batch_size"] == 2  # type: ignore[index]


def test_a_batch_of_many_calls_gives_each_trace_its_run_linked_to_the_first(
    model_store: Path, exporter: InMemorySpanExporter
) -> None:
    """The tiny model runs faster than a call arrives, so calls seldom overlap a run: a long batching
    window (which applies once rows queue behind a run, as in test_serve_batching.py), and rounds of eight
    concurrent calls until two shared a run."""

    async def calls(channel: grpc.aio.Channel) -> None:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        texts = [f"text number {i} " * 20 for i in range(8)]
        for _ in range(ROUNDS):
            await asyncio.gather(
                *(
                    stub.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=[t]))
                    for t in texts
                )
            )
            if any(
                s.name == "onnxruntime.run" and s.attributes["tuneserve.batch_size"] > 1  # type: ignore[index,operator]
                for s in exporter.get_finished_spans()
            ):
                return

    asyncio.run(_serve(model_store, calls, max_wait_us=200_000))
    traces = _traces(exporter.get_finished_spans())
    assert len(traces) % 8 == 0
    runs = [next(s for s in spans if s.name == "onnxruntime.run") for spans in traces.values()]
    assert all({s.name for s in spans if s.parent is not None} == CHILDREN for spans in traces.values())
    batched = [r for r in runs if r.attributes["tuneserve.batch_size"] > 1]  # type: ignore[index,operator]
    assert batched, "eight concurrent calls never shared a run"
    firsts = {r.context.span_id for r in batched if not r.links}
    for r in batched:
        if r.links:  # linked to the first run span of its batch, which is in another trace
            (link,) = r.links
            assert link.context.span_id in firsts
            assert link.context.trace_id != r.context.trace_id


def test_tracing_is_off_without_otel_variables(server: ServerProcess) -> None:
    """The shared server has no OTEL_* variables: it serves without importing OpenTelemetry at all."""
    server.inference.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["ok"]))
    server.models.ListModels(model_pb2.ListModelsRequest())
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in list(server.lines) if line.startswith("import time:")
    }
    assert "tokenizers" in imported, "importtime output missing"
    assert not {name for name in imported if name.startswith("opentelemetry")}
    assert not any(e.get("event") == "tracing on" for e in server.events)
