"""Requests that are not valid protobuf (garbage, invalid UTF-8 in a string) are INVALID_ARGUMENT on every
kind of RPC, and the server goes on serving."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tuneserve.v1 import model_pb2

from .live import ServerProcess, metric_value

GARBAGE = b"\xff\xff\xff\xff"
BAD_UTF8 = b"\x0a\x02\xff\xfe"  # field 1 (a string) holding two bytes that are not UTF-8


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("decoding") / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    yield server
    server.stop()


def _raw_unary(server: ServerProcess, method: str, body: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        server.channel.unary_unary(method)(body, timeout=10)
    return caught.value


@pytest.mark.parametrize("body", [GARBAGE, BAD_UTF8], ids=["garbage", "bad-utf8"])
@pytest.mark.parametrize(
    "method",
    [
        "/tuneserve.v1.InferenceService/Classify",
        "/tuneserve.v1.ModelService/GetModel",
        "/tuneserve.v1.TrainingService/Train",
        "/grpc.health.v1.Health/Check",
    ],
)
def test_undecodable_unary_requests_are_invalid_argument(
    bare: ServerProcess, method: str, body: bytes
) -> None:
    error = _raw_unary(bare, method, body)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "not a valid" in error.details()


@pytest.mark.parametrize("body", [GARBAGE, BAD_UTF8], ids=["garbage", "bad-utf8"])
def test_undecodable_stream_requests_are_invalid_argument(bare: ServerProcess, body: bytes) -> None:
    stream = bare.channel.stream_stream("/tuneserve.v1.InferenceService/ClassifyStream")
    with pytest.raises(grpc.RpcError) as caught:
        list(stream(iter([body]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    watch = bare.channel.unary_stream("/tuneserve.v1.TrainingService/WatchTrainingJob")
    with pytest.raises(grpc.RpcError) as caught:
        list(watch(body, timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


def test_server_still_serves_after_undecodable_requests(bare: ServerProcess) -> None:
    _raw_unary(bare, "/tuneserve.v1.ModelService/ListModels", GARBAGE)
    assert bare.models.ListModels(model_pb2.ListModelsRequest()).models is not None
    text = bare.scrape()
    assert metric_value(text, "tuneserve_requests_total", method="ListModels", code="OK") >= 1
