"""Server pieces without a network or a real model: error statuses, settings precedence and the CLI,
execution-provider placement, gRPC's listener, ordered streams, the reflection v1 descriptor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tuneserve.repository import Manifest, ModelVersion, QuantizationInfo
from tuneserve.server import errors
from tuneserve.server.cli import build_settings, serve
from tuneserve.server.runtime import choose_placement
from tuneserve.server.settings import Settings
from tuneserve.server.streams import ordered

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.ModelNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.ModelNotReady, grpc.StatusCode.UNAVAILABLE),
        (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
        (errors.JobConflict, grpc.StatusCode.ALREADY_EXISTS),
        (errors.GateFailed, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ConcurrentChange, grpc.StatusCode.ABORTED),
        (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.TuneserveError, grpc.StatusCode.INTERNAL),
    ],
)
def test_every_error_carries_its_status(cls: type[errors.TuneserveError], code: grpc.StatusCode) -> None:
    err = cls("what was wrong; what is allowed")
    assert err.code == code and err.message == "what was wrong; what is allowed"
    assert isinstance(err, errors.TuneserveError)


def test_settings_precedence_cli_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TUNESERVE_PORT",
        "TUNESERVE_MODEL_ROOT",
        "TUNESERVE_BATCH__MAX_QUEUE",
        "TUNESERVE_METRICS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    default = build_settings({})
    assert (default.port, default.metrics_port, default.model_root) == (50051, 9464, "models")
    assert default.batch.max_queue == 512
    monkeypatch.setenv("TUNESERVE_PORT", "6000")
    monkeypatch.setenv("TUNESERVE_MODEL_ROOT", "/srv/models")
    monkeypatch.setenv("TUNESERVE_BATCH__MAX_QUEUE", "7")
    env = build_settings({"port": None, "batch__max_queue": None})
    assert (env.port, env.model_root, env.batch.max_queue) == (6000, "/srv/models", 7)
    cli = build_settings({"port": 7000, "batch__max_queue": 9, "limits__max_text_bytes": 100})
    assert (cli.port, cli.batch.max_queue, cli.limits.max_text_bytes) == (7000, 9, 100)
    assert cli.model_root == "/srv/models"  # not given on the command line: the environment's
    with pytest.raises(ValueError):
        Settings.load(port=70000)
    with pytest.raises(Exception, match="frozen"):
        cli.port = 1  # type: ignore[misc]


def test_cli_help_shows_env_fallbacks() -> None:
    result = CliRunner().invoke(serve, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for fragment in (
        "--model-root",
        "TUNESERVE_MODEL_ROOT",
        "--port",
        "TUNESERVE_PORT",
        "50051",
        "--metrics-port",
        "TUNESERVE_METRICS_PORT",
        "9464",
        "--max-wait-us",
        "TUNESERVE_BATCH__MAX_WAIT_US",
    ):
        assert fragment in result.output


def test_cli_rejects_bad_values() -> None:
    result = CliRunner().invoke(serve, ["--port", "-1"])
    assert result.exit_code == 2 and "--port" in result.output
    result = CliRunner().invoke(serve, [], env={"TUNESERVE_PORT": "abc"})
    assert result.exit_code == 2 and "TUNESERVE_PORT" in result.output


def version(onnx_file: str, served: str, files: list[str]) -> ModelVersion:
    manifest = Manifest(
        name="m",
        version=1,
        task="classification",
        labels=["a", "b"],
        max_length=8,
        base_model="x",
        onnx_file=onnx_file,
        quantization=QuantizationInfo(requested=served, served=served),  # type: ignore[arg-type]
        files=dict.fromkeys(files, "0"),
    )
    return ModelVersion(Path("/nowhere"), manifest)


@pytest.mark.parametrize(
    ("onnx_file", "served", "files", "available", "device", "expected"),
    [
        (
            "model_int8.onnx",
            "int8-dynamic",
            ["model.onnx", "model_int8.onnx"],
            [CPU],
            "auto",
            ("model_int8.onnx", (CPU,), "int8-dynamic"),
        ),
        (
            "model_int8.onnx",
            "int8-dynamic",
            ["model.onnx", "model_int8.onnx"],
            [CUDA, CPU],
            "auto",
            ("model.onnx", (CUDA, CPU), "none"),
        ),
        (
            "model_int8.onnx",
            "int8-dynamic",
            ["model.onnx", "model_int8.onnx", "model_fp16.onnx"],
            [CUDA, CPU],
            "auto",
            ("model_fp16.onnx", (CUDA, CPU), "fp16"),
        ),
        (
            "model_fp16.onnx",
            "fp16",
            ["model.onnx", "model_fp16.onnx"],
            [CPU],
            "auto",
            ("model.onnx", (CPU,), "none"),
        ),
        ("model.onnx", "none", ["model.onnx"], [CUDA, CPU], "auto", ("model.onnx", (CUDA, CPU), "none")),
        (
            "model.onnx",
            "none",
            ["model.onnx", "model_fp16.onnx"],
            [CUDA, CPU],
            "cpu",
            ("model.onnx", (CPU,), "none"),
        ),
    ],
)
def test_placement(
    onnx_file: str,
    served: str,
    files: list[str],
    available: list[str],
    device: str,
    expected: tuple[str, tuple[str, ...], str],
) -> None:
    p = choose_placement(version(onnx_file, served, files), device, available)  # type: ignore[arg-type]
    assert (p.onnx_file, p.providers, p.quantization) == expected


def test_ordered_stream_keeps_request_order_and_stops_at_the_first_error() -> None:
    async def requests(items: list[int]) -> AsyncIterator[int]:
        for i in items:
            yield i

    async def handle(i: int) -> int:
        await asyncio.sleep(0.001 * (10 - i))  # later requests finish first
        if i == 7:
            raise errors.InvalidInput("seven")
        return i * 10

    async def collect(items: list[int]) -> list[int]:
        return [r async for r in ordered(requests(items), handle, max_in_flight=4)]

    assert asyncio.run(collect(list(range(6)))) == [0, 10, 20, 30, 40, 50]

    async def partial() -> list[int]:
        got: list[int] = []
        with pytest.raises(errors.InvalidInput):
            async for r in ordered(requests(list(range(10))), handle, max_in_flight=4):
                got.append(r)
        return got

    assert asyncio.run(partial()) == [0, 10, 20, 30, 40, 50, 60]


def test_ordered_stream_stops_reading_at_a_drain_and_ends_unavailable() -> None:
    """Requests read before the stop are answered; the stream then ends with UNAVAILABLE, at once, while
    its client would go on sending."""

    async def run() -> tuple[list[int], errors.TuneserveError, int]:
        stop = asyncio.Event()
        read = 0

        async def endless() -> AsyncIterator[int]:
            nonlocal read
            while True:
                read += 1
                yield read
                if read == 3:
                    stop.set()  # the drain starts while request 3 is being handled
                await asyncio.sleep(0.01)

        async def handle(i: int) -> int:
            await asyncio.sleep(0.05)
            return i * 10

        got: list[int] = []
        with pytest.raises(errors.ModelNotReady) as info:
            async for r in ordered(endless(), handle, max_in_flight=4, stop=stop):
                got.append(r)
        return got, info.value, read

    got, error, read = asyncio.run(run())
    assert got == [10, 20, 30]
    assert read == 3
    assert "shutting down" in error.message and "3 responses" in error.message


def test_concurrent_rpcs_default_follows_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().concurrent_rpcs == 128  # a quarter of the default --max-queue (512)
    assert Settings.load(batch={"max_queue": 100}).concurrent_rpcs == 64
    monkeypatch.setenv("TUNESERVE_MAX_CONCURRENT_RPCS", "7")
    assert Settings().concurrent_rpcs == 7
    assert build_settings({"max_concurrent_rpcs": 9}).concurrent_rpcs == 9


def test_reflection_v1_descriptor_mirrors_v1alpha() -> None:
    from google.protobuf import descriptor_pool

    from tuneserve.server import reflection

    reflection._register_v1_descriptor()
    reflection._register_v1_descriptor()  # idempotent
    service = descriptor_pool.Default().FindServiceByName(reflection.V1)
    method = service.methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming


# The serve command's process: the top-level CLI, then the server package, then everything that uses grpc.
LISTENER = """
import os, sys
import tuneserve.cli
assert "grpc" not in sys.modules, "tuneserve.cli imports grpc before tuneserve.server can configure it"
import tuneserve.server.cli
print(os.environ["GRPC_EXPERIMENTS"])
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "-event_engine_listener"), ("", ""), ("x", "x")])
def test_serve_uses_the_classic_grpc_listener_by_default(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if given is not None:
        env["GRPC_EXPERIMENTS"] = given
    done = subprocess.run(
        [sys.executable, "-c", LISTENER], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("root", ["gs://bucket/models", "foo://x", "s3:/models/root", "s3://"])
def test_a_model_root_with_an_unknown_scheme_is_refused_not_a_local_folder(root: str) -> None:
    with pytest.raises(ValidationError, match="model_root"):
        build_settings({"model_root": root})


def test_an_object_store_root_keeps_its_jobs_off_the_bucket() -> None:
    settings = build_settings({"model_root": "s3://models/root"})
    assert settings.model_root == "s3://models/root"
    assert settings.store.root == "s3://models/root"
    assert not str(settings.jobs_dir).startswith("s3:")
