"""Health (overall and per service) through start-up and shutdown, reflection (v1 and v1alpha), metrics."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tuneserve.v1 import inference_pb2

from .live import ServerProcess, metric_value

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ["tuneserve.v1.InferenceService", "tuneserve.v1.ModelService", "tuneserve.v1.TrainingService"]


def check(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


@pytest.fixture()
def gated_store(model_store: Path, tmp_path: Path) -> Iterator[Path]:
    """The test models plus ``a-gated``, whose ``serving.json`` is a named pipe: loading it blocks until
    the test writes the version into the pipe, so the server stays "starting" for as long as the test
    needs."""
    root = tmp_path / "models"
    root.mkdir()
    for name in ("tiny-sentiment", "tiny-ner"):
        (root / name).symlink_to(model_store / name)
    gated = root / "a-gated"
    gated.mkdir()
    (gated / "1").symlink_to(model_store / "tiny-sentiment" / "1")
    os.mkfifo(gated / "serving.json")
    yield root
    release(gated / "serving.json")


def release(fifo: Path) -> None:
    """Write the serving version into the pipe (if a reader waits), then make it a plain file."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        pass  # no reader (yet or any more)
    else:
        os.write(fd, b'{"version": 1}')
        os.close(fd)
    if fifo.exists() and not fifo.is_file():
        tmp = fifo.with_name("serving.json.tmp")
        tmp.write_text('{"version": 1}')
        os.replace(tmp, fifo)


def test_health_through_startup_and_shutdown(gated_store: Path) -> None:
    proc = ServerProcess(gated_store, wait=False)
    try:
        # Starting: every service NOT_SERVING, inference UNAVAILABLE with a reason.
        assert check(proc.channel) == NOT_SERVING
        for service in SERVICES:
            assert check(proc.channel, service) == NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            proc.inference.Classify(
                inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["hi"]), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "starting" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            check(proc.channel, "no.such.Service")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        statuses: queue.Queue[int] = queue.Queue()
        watch = health_pb2_grpc.HealthStub(proc.channel).Watch(health_pb2.HealthCheckRequest(service=""))

        def follow() -> None:
            try:
                for reply in watch:
                    statuses.put(reply.status)
            except grpc.RpcError:
                statuses.put(-1)

        threading.Thread(target=follow, daemon=True).start()
        assert statuses.get(timeout=10) == NOT_SERVING

        release(gated_store / "a-gated" / "serving.json")
        assert statuses.get(timeout=30) == SERVING
        proc.wait_event("serving")
        assert check(proc.channel) == SERVING
        assert check(proc.channel, "tuneserve.v1.InferenceService") == SERVING
        assert check(proc.channel, "tuneserve.v1.ModelService") == SERVING
        assert check(proc.channel, "tuneserve.v1.TrainingService") == SERVING
        reply = proc.inference.Classify(
            inference_pb2.ClassifyRequest(model="a-gated", texts=["hi"]), timeout=10
        )
        assert reply.version == 1

        proc.proc.terminate()
        assert statuses.get(timeout=30) in (NOT_SERVING, -1)
        watch.cancel()
    finally:
        assert proc.stop() == 0


def _reflect(
    channel: grpc.Channel, version: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (reply,) = list(call(iter([request]), timeout=10))
    return reply


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_and_describes(server: ServerProcess, version: str) -> None:
    listed = _reflect(server.channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert (
        set(SERVICES)
        | {
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        <= names
    )
    described = _reflect(
        server.channel,
        version,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="tuneserve.v1.InferenceService"),
    )
    assert described.file_descriptor_response.file_descriptor_proto
    v1 = _reflect(
        server.channel,
        version,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    )
    assert v1.file_descriptor_response.file_descriptor_proto
    # A method's name (what ghz asks for) resolves to its service's file; an unknown one is NOT_FOUND.
    method = _reflect(
        server.channel,
        version,
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="tuneserve.v1.InferenceService.Classify"
        ),
    )
    assert method.file_descriptor_response == described.file_descriptor_response
    missing = _reflect(
        server.channel,
        version,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="tuneserve.v1.InferenceService.Nope"),
    )
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_reflection_descriptor_database(server: ServerProcess) -> None:
    """What grpcurl does: fetch the descriptors and find the messages of an RPC."""
    db = ProtoReflectionDescriptorDatabase(server.channel)
    assert "tuneserve.v1.InferenceService" in db.get_services()
    from google.protobuf.descriptor_pool import DescriptorPool

    pool = DescriptorPool(db)
    method = pool.FindServiceByName("tuneserve.v1.InferenceService").methods_by_name["ExtractEntities"]
    assert (
        method.input_type.fields_by_name["aggregation"].enum_type.full_name
        == "tuneserve.v1.AggregationStrategy"
    )
    if shutil.which("grpcurl"):
        out = subprocess.run(
            ["grpcurl", "-plaintext", server.target, "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "tuneserve.v1.InferenceService" in out


def test_metrics_scrape(server: ServerProcess) -> None:
    server.inference.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["a", "b c"]))
    server.inference.ExtractEntities(
        inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=["John in Paris"])
    )
    with pytest.raises(grpc.RpcError):
        server.inference.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment"))
    with pytest.raises(grpc.RpcError):
        server.inference.Classify(inference_pb2.ClassifyRequest(model="made-up-name-123", texts=["x"]))
    text = server.scrape()
    assert (
        metric_value(text, "tuneserve_requests_total", method="Classify", model="tiny-sentiment", code="OK")
        >= 1
    )
    assert (
        metric_value(
            text,
            "tuneserve_requests_total",
            method="Classify",
            model="tiny-sentiment",
            code="INVALID_ARGUMENT",
        )
        >= 1
    )
    assert (
        metric_value(text, "tuneserve_requests_total", method="Classify", model="_unknown", code="NOT_FOUND")
        >= 1
    )
    assert "made-up-name-123" not in text  # clients cannot grow the label set
    assert (
        metric_value(
            text, "tuneserve_request_duration_seconds_count", method="ExtractEntities", model="tiny-ner"
        )
        >= 1
    )
    assert metric_value(text, "tuneserve_queue_wait_seconds_count", model="tiny-sentiment") >= 2
    assert metric_value(text, "tuneserve_batch_size_count", model="tiny-ner") >= 1
    assert metric_value(text, "tuneserve_tokens_total", model="tiny-sentiment") >= 6
    # The version that answered labels request and run metrics; a call refused before any version was
    # reached has an empty one.
    ok = {"method": "Classify", "model": "tiny-sentiment", "version": "1", "code": "OK"}
    assert metric_value(text, "tuneserve_requests_total", **ok) >= 1
    invalid = {"method": "Classify", "model": "tiny-sentiment", "version": "", "code": "INVALID_ARGUMENT"}
    assert metric_value(text, "tuneserve_requests_total", **invalid) >= 1
    assert (
        metric_value(
            text,
            "tuneserve_request_duration_seconds_count",
            method="ExtractEntities",
            model="tiny-ner",
            version="1",
        )
        >= 1
    )
    assert (
        metric_value(text, "tuneserve_inference_duration_seconds_count", model="tiny-ner", version="1") >= 1
    )
    assert (
        metric_value(
            text, "tuneserve_tokenization_duration_seconds_count", model="tiny-sentiment", version="1"
        )
        >= 1
    )
    assert metric_value(text, "tuneserve_input_tokens_count", model="tiny-ner", version="1") >= 1
    assert metric_value(text, "tuneserve_input_tokens_sum", model="tiny-sentiment", version="1") >= 6
    for model in ("tiny-sentiment", "tiny-ner", "tiny-sentiment-int8"):
        assert metric_value(text, "tuneserve_model_ready", model=model) == 1
    assert "tuneserve_queue_depth{" in text
    assert (
        metric_value(
            text,
            "tuneserve_model_info",
            model="tiny-sentiment-int8",
            version="1",
            quantization="int8-dynamic",
            provider="CPUExecutionProvider",
        )
        == 1
    )
    assert metric_value(text, "tuneserve_model_info", model="tiny-ner", version="1", quantization="none") == 1
    for line in text.splitlines():
        if line.startswith("# TYPE tuneserve_"):
            assert line.split()[2].startswith("tuneserve_")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool not installed (Debian/Ubuntu: apt-get install prometheus); the scrape was checked "
            "above but not linted"
        )
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_model_that_fails_to_load_does_not_stop_the_others(model_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "tiny-sentiment").symlink_to(model_store / "tiny-sentiment")
    shutil.copytree(model_store / "tiny-ner", root / "broken")
    with (root / "broken" / "1" / "model.onnx").open("ab") as f:
        f.write(b"tampered")
    proc = ServerProcess(root)
    try:
        assert check(proc.channel) == SERVING
        assert proc.inference.Classify(
            inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["ok"])
        ).results
        with pytest.raises(grpc.RpcError) as info:
            proc.inference.ExtractEntities(inference_pb2.ExtractEntitiesRequest(model="broken", texts=["ok"]))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "failed to load" in info.value.details() and "checksum mismatch" in info.value.details()
        assert any(
            e.get("event") == "model failed to load" and e.get("level") == "error" for e in proc.events
        )
        # A probe can ask about one model: each has its own health entry, and the readiness gauge agrees.
        assert check(proc.channel, "tiny-sentiment") == SERVING
        assert check(proc.channel, "broken") == NOT_SERVING
        text = proc.scrape()
        assert metric_value(text, "tuneserve_model_ready", model="tiny-sentiment") == 1
        assert 'tuneserve_model_ready{model="broken"} 0.0' in text
        assert metric_value(text, "tuneserve_model_load_failures_total", model="broken", phase="startup") == 1
        assert metric_value(text, "tuneserve_model_load_failures_total", model="tiny-sentiment") == 0
    finally:
        assert proc.stop() == 0
