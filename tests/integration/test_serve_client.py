"""The Python client against a live server: typed results, errors, retries by service config, training
jobs and versions."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from helpers import FIXTURES
from tuneserve.client import NoEarlierVersionError, TuneserveClient, TuneserveError
from tuneserve.data import read_examples
from tuneserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc, training_pb2, training_pb2_grpc

from .live import ServerProcess


def test_classify_and_extract(server: ServerProcess) -> None:
    with TuneserveClient(server.target, timeout=10) as client:
        assert client.health() == "SERVING"
        result = client.classify("tiny-sentiment", ["good", "bad " * 100], top_k=1)
        raw = server.inference.Classify(
            inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["good"], top_k=1)
        )
        assert result.model == "tiny-sentiment" and result.version == 1
        assert result.results[0].labels[0].label == raw.results[0].labels[0].label
        assert abs(result.results[0].labels[0].score - raw.results[0].labels[0].score) < 1e-4
        assert [r.truncated for r in result.results] == [False, True]
        text = "Zoë met Angela Merkel in Zürich 🎉 and New York."
        extracted = client.extract_entities("tiny-ner", [text], aggregation="max")
        assert extracted.model == "tiny-ner"
        assert all(text[e.start : e.end] == e.text for e in extracted.results[0])
        assert [m.name for m in client.list_models()] == ["tiny-ner", "tiny-sentiment", "tiny-sentiment-int8"]
        assert client.get_model("tiny-ner").versions[0].execution_provider == "CPUExecutionProvider"


def test_errors_are_typed_and_not_retried(server: ServerProcess) -> None:
    with TuneserveClient(server.target, retries=4) as client:
        with pytest.raises(TuneserveError) as info:
            client.classify("tiny-sentiment", [])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "texts is empty" in info.value.details
        with pytest.raises(ValueError, match="aggregation"):
            client.extract_entities("tiny-ner", ["x"], aggregation="longest")  # type: ignore[arg-type]


class Flaky(inference_pb2_grpc.InferenceServiceServicer, training_pb2_grpc.TrainingServiceServicer):
    """Fails every call with ``codes[call]`` while there are codes left, then answers."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes = list(codes)
        self.calls = 0

    def _answer(self, context: grpc.ServicerContext, reply: object) -> object:
        self.calls += 1
        if self.calls <= len(self.codes):
            context.abort(self.codes[self.calls - 1], "not now")
        return reply

    def Classify(self, request: object, context: grpc.ServicerContext) -> object:
        return self._answer(context, inference_pb2.ClassifyResponse(model="m", version=1))

    def Train(self, request: object, context: grpc.ServicerContext) -> object:
        return self._answer(context, training_pb2.TrainResponse())


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Flaky()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, server)
    training_pb2_grpc.add_TrainingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_retries_by_service_config_like_go_and_java(flaky: tuple[Flaky, str]) -> None:
    servicer, target = flaky
    with TuneserveClient(target, retries=4, backoff=0.01, max_backoff=0.02) as client:
        servicer.codes = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert client.classify("m", ["x"]).version == 1 and servicer.calls == 3

        servicer.calls, servicer.codes = 0, [grpc.StatusCode.UNAVAILABLE] * 9
        with pytest.raises(TuneserveError) as info:
            client.classify("m", ["x"])
        assert info.value.code == grpc.StatusCode.UNAVAILABLE and servicer.calls == 5, "gRPC caps at 5"

        # Train: never twice after UNAVAILABLE (the job may be queued), again after RESOURCE_EXHAUSTED.
        servicer.calls, servicer.codes = 0, [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(TuneserveError):
            client.train(training_pb2.TrainRequest(model="m"))
        assert servicer.calls == 1
        servicer.calls, servicer.codes = 0, [grpc.StatusCode.RESOURCE_EXHAUSTED]
        client.train(training_pb2.TrainRequest(model="m"))
        assert servicer.calls == 2
        servicer.calls, servicer.codes = 0, [grpc.StatusCode.INVALID_ARGUMENT]
        with pytest.raises(TuneserveError):
            client.classify("m", ["x"])
        assert servicer.calls == 1
    with TuneserveClient(target, retries=0) as client:
        servicer.calls, servicer.codes = 0, [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(TuneserveError):
            client.classify("m", ["x"])
        assert servicer.calls == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unavailable_is_raised() -> None:
    client = TuneserveClient(f"127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=10)
    with client, pytest.raises(TuneserveError) as info:
        client.classify("tiny-sentiment", ["x"])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_wait_for_ready_waits_for_the_server(model_store: Path) -> None:
    port = free_port()
    outcome: dict[str, object] = {}

    def call() -> None:
        with TuneserveClient(f"127.0.0.1:{port}", wait_for_ready=True, timeout=60) as c:
            try:
                outcome["result"] = c.classify("tiny-sentiment", ["hello"])
            except TuneserveError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)  # the call starts before anything listens
    proc = ServerProcess(model_store, "--port", str(port))
    try:
        thread.join(60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["result"].results[0].labels  # type: ignore[attr-defined]
    finally:
        assert proc.stop() == 0


def examples(name: str) -> training_pb2.Dataset:
    found = read_examples("classification", FIXTURES / name)
    rows = [training_pb2.ClassificationExample(text=e.text, labels=e.labels) for e in found]
    return training_pb2.Dataset(classification_examples=training_pb2.ClassificationExamples(examples=rows))


def test_train_watch_promote_rollback_delete(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    tiny = training_pb2.Hyperparameters(epochs=2, batch_size=8, max_length=32, learning_rate=1e-3)
    request = training_pb2.TrainRequest(
        model="py-reviews",
        task=common_pb2.TASK_CLASSIFICATION,
        base_model=str(tiny_base),
        training_data=examples("sentiment_train.tsv"),
        validation_data=examples("sentiment_validation.tsv"),
        hyperparameters=tiny,
    )
    try:
        with TuneserveClient(server.target, timeout=30) as client:
            first = client.train(request)
            events = list(client.watch(first.id))
            assert events[-1].state == training_pb2.JOB_STATE_SUCCEEDED
            assert any(e.stage == training_pb2.TRAINING_STAGE_TRAINING for e in events)
            assert client.get_job(first.id).promoted

            request.promotion_policy = training_pb2.PROMOTION_POLICY_REGISTER_ONLY
            second = client.train(request)
            assert list(client.watch(second.id))[-1].state == training_pb2.JOB_STATE_SUCCEEDED
            assert [j.id for j in client.list_jobs("py-reviews")] == [second.id, first.id]
            assert client.list_jobs(state=training_pb2.JOB_STATE_FAILED) == []

            assert client.promote("py-reviews", 2).serving_version == 2
            assert client.rollback("py-reviews").serving_version == 1
            client.delete_version("py-reviews", 2)
            with pytest.raises(NoEarlierVersionError):
                client.rollback("py-reviews")

            request.hyperparameters.epochs = 100
            long = client.train(request)
            assert client.cancel_job(long.id).id == long.id
            assert list(client.watch(long.id))[-1].state == training_pb2.JOB_STATE_CANCELLED
    finally:
        server.stop()
