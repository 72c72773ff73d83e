"""A serving version that fails to load at start-up (a flipped byte) while intact versions lie beside it:
the model's own health entry, strict readiness, serving the previous version, GetModel's load error, the
load-failure metrics, and the store poller trying the version again once its files change."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import inference_pb2, model_pb2

from .live import ServerProcess, metric_value

MODEL = "tiny-sentiment"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture()
def corrupt_serving(model_store: Path, tmp_path: Path) -> Path:
    """Version 1 intact; version 2, recorded as serving, with one byte of its ONNX file flipped."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(model_store / MODEL, root / MODEL)
    store = LocalModelStore(root)
    first = store.open_version(MODEL, 1)
    with store.staging(MODEL) as staged:
        shutil.copytree(first.path, staged, dirs_exist_ok=True)
        version = store.publish(MODEL, staged, first.manifest)
    store.set_serving_version(MODEL, version)
    onnx = root / MODEL / str(version) / first.manifest.onnx_file
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    return root


def health(proc: ServerProcess, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(proc.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def get_model(proc: ServerProcess) -> model_pb2.Model:
    return proc.models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=10).model


def classify(proc: ServerProcess) -> int:
    return proc.inference.Classify(
        inference_pb2.ClassifyRequest(model=MODEL, texts=["ok"]), timeout=10
    ).version


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_default_the_model_is_down_and_says_why(corrupt_serving: Path) -> None:
    proc = ServerProcess(corrupt_serving, "--no-training")
    try:
        with pytest.raises(grpc.RpcError) as info:
            classify(proc)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "checksum mismatch" in info.value.details()
        assert health(proc, MODEL) == NOT_SERVING
        assert health(proc) == SERVING  # not strict: the other models (none here) serve
        model = get_model(proc)
        assert model.serving_version == 0  # never a version that does not serve
        assert [v.version for v in model.versions] == [1]  # the corrupt one is not listed
        assert "version 2 failed to load" in model.load_error and "checksum mismatch" in model.load_error
        text = proc.scrape()
        assert metric_value(text, "tuneserve_model_load_failed", model=MODEL) == 1
        assert metric_value(text, "tuneserve_model_load_failures_total", model=MODEL) == 1

        # Rolled back by hand: the model serves, its health and the metric follow.
        proc.models.SetServingVersion(model_pb2.SetServingVersionRequest(name=MODEL, version=1), timeout=60)
        assert classify(proc) == 1
        assert health(proc, MODEL) == SERVING
        assert not get_model(proc).load_error
        assert metric_value(proc.scrape(), "tuneserve_model_load_failed", model=MODEL) == 0
    finally:
        assert proc.stop() == 0


def test_strict_readiness_is_not_ready_while_a_model_is_down(corrupt_serving: Path) -> None:
    proc = ServerProcess(corrupt_serving, "--no-training", "--strict-readiness")
    try:
        assert health(proc) == NOT_SERVING
        assert health(proc, "tuneserve.v1.InferenceService") == NOT_SERVING
        assert health(proc, "tuneserve.v1.ModelService") == SERVING  # so that it can be fixed
        assert health(proc, MODEL) == NOT_SERVING
        proc.models.SetServingVersion(model_pb2.SetServingVersionRequest(name=MODEL, version=1), timeout=60)
        assert health(proc) == SERVING
        assert health(proc, "tuneserve.v1.InferenceService") == SERVING
    finally:
        assert proc.stop() == 0


def test_serve_previous_serves_the_newest_intact_version(corrupt_serving: Path) -> None:
    proc = ServerProcess(corrupt_serving, "--no-training", "--on-load-failure", "serve-previous")
    try:
        assert classify(proc) == 1
        assert health(proc, MODEL) == SERVING
        model = get_model(proc)
        assert model.serving_version == 1
        assert "version 2 failed to load" in model.load_error
        event = proc.wait_event("serving an older version: the serving version failed to load")
        assert event["level"] == "error" and event["version"] == 1 and event["failed_version"] == 2
        assert metric_value(proc.scrape(), "tuneserve_model_load_failed", model=MODEL) == 1
    finally:
        assert proc.stop() == 0


def test_the_poller_tries_a_failed_version_again_once_its_files_change(corrupt_serving: Path) -> None:
    onnx = (
        corrupt_serving
        / MODEL
        / "2"
        / LocalModelStore(corrupt_serving).open_version(MODEL, 1).manifest.onnx_file
    )
    proc = ServerProcess(
        corrupt_serving,
        "--no-training",
        "--on-load-failure",
        "serve-previous",
        "--store-poll-interval",
        "0.2",
    )
    try:
        assert classify(proc) == 1
        time.sleep(1.0)  # several polls: the unchanged version is not tried again
        assert metric_value(proc.scrape(), "tuneserve_model_load_failures_total", model=MODEL) == 1
        # Repaired in place (the same version number): the next poll sees new files and loads it.
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.write_bytes(bytes(data))
        eventually(lambda: classify(proc) == 2)
        model = get_model(proc)
        assert model.serving_version == 2 and not model.load_error
        assert metric_value(proc.scrape(), "tuneserve_model_load_failed", model=MODEL) == 0
    finally:
        assert proc.stop() == 0
