"""SIGTERM with calls in flight: health flips to NOT_SERVING, new calls get UNAVAILABLE, the calls in
flight finish (OK, complete results) within the grace period, and the process exits 0."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.v1 import inference_pb2

from .live import ServerProcess, metric_value

# Long texts: hundreds of NER windows each, so that the calls are still running when SIGTERM arrives.
LONG = ("Angela Merkel met Emmanuel Macron in Berlin to discuss the Siemens AG merger. " * 800)[:60000]
CALLS = 6


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_drain_with_calls_in_flight(model_store: Path, sig: int) -> None:
    proc = ServerProcess(
        model_store,
        "--grace-period",
        "60",
        "--intra-op-threads",
        "1",
        "--max-batch-size",
        "8",
        "--max-queue",
        "100000",
        "--max-queue-tokens",
        "10000000",
    )
    health = health_pb2_grpc.HealthStub(proc.channel)
    request = inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG])
    try:
        with ThreadPoolExecutor(CALLS) as pool:
            futures = [
                pool.submit(proc.inference.ExtractEntities, request, timeout=120) for _ in range(CALLS)
            ]
            wait_for(lambda: metric_value(proc.scrape(), "tuneserve_in_flight_requests") >= CALLS)
            proc.proc.send_signal(sig)
            wait_for(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            )
            with pytest.raises(grpc.RpcError) as info:
                proc.inference.Classify(
                    inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["hi"]), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in info.value.details()
            still_running = sum(not f.done() for f in futures)
            replies = [f.result() for f in futures]
        assert still_running > 0, "the calls finished before the drain started; make them longer"
        assert all(len(r.results) == 1 and r.results[0].entities for r in replies)
        assert len({r.SerializeToString() for r in replies}) == 1
        assert proc.stop(sig) == 0
        draining = proc.wait_event("draining")
        assert draining["in_flight"] >= 1
        assert proc.wait_event("stopped")["in_flight_cut"] == 0
    finally:
        proc.stop(signal.SIGKILL)
