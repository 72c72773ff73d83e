"""The Python client against a live server: typed results, errors, retries on UNAVAILABLE."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import grpc
import pytest

from tuneserve.client import TuneserveClient, TuneserveError
from tuneserve.v1 import inference_pb2

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
    with TuneserveClient(server.target, retries=5) as client:
        with pytest.raises(TuneserveError) as info:
            client.classify("tiny-sentiment", [])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and info.value.attempts == 1
        assert "texts is empty" in info.value.details
        with pytest.raises(ValueError, match="aggregation"):
            client.extract_entities("tiny-ner", ["x"], aggregation="longest")  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unavailable_is_retried_then_raised() -> None:
    client = TuneserveClient(f"127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=10)
    with client, pytest.raises(TuneserveError) as info:
        client.classify("tiny-sentiment", ["x"])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.attempts == 3


def test_retries_until_the_server_is_up(model_store: Path) -> None:
    port = free_port()
    outcome: dict[str, object] = {}

    def call() -> None:
        with TuneserveClient(
            f"127.0.0.1:{port}", retries=100, backoff=0.05, max_backoff=0.3, timeout=60
        ) as c:
            try:
                outcome["result"] = c.classify("tiny-sentiment", ["hello"])
            except TuneserveError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)  # the first attempts fail: nothing listens yet
    proc = ServerProcess(model_store, "--port", str(port))
    try:
        thread.join(60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["result"].results[0].labels  # type: ignore[attr-defined]
    finally:
        assert proc.stop() == 0
