"""Overload: admission by cost before any work, refusal of what cannot finish in time, no work after a
deadline, gRPC's own backlog capped, and streams that end at a drain. Behaviour only: the figures are in
``benchmarks/overload.py``."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from tuneserve.v1 import inference_pb2 as I

from .live import ServerProcess, metric_value

LONG = ("Angela Merkel met Emmanuel Macron in Berlin to discuss the Siemens AG merger. " * 800)[:60000]
OK = I.ClassifyRequest(model="tiny-sentiment", texts=["fine"])


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def runs(proc: ServerProcess, model: str) -> float:
    return metric_value(proc.scrape(), "tuneserve_batch_size_count", model=model)


def test_a_call_that_cannot_meet_its_deadline_is_refused_before_any_work(server: ServerProcess) -> None:
    """With the drain rate measured, a request far larger than its deadline allows is refused at once
    (RESOURCE_EXHAUSTED, with advice): nothing of it is windowed or run. An expired one: DEADLINE_EXCEEDED."""
    server.inference.ExtractEntities(I.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG[:5000]]))
    huge = I.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG] * 64)
    before = runs(server, "tiny-ner")
    try:
        server.inference.ExtractEntities(huge, timeout=0.2)
        raise AssertionError("a request of 3.8 M characters finished within 0.2 s")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
        assert "cannot finish this request within its deadline" in exc.details()
        assert "retry in about" in exc.details()
    text = server.scrape()
    assert runs(server, "tiny-ner") == before
    assert metric_value(text, "tuneserve_refused_requests_total", model="tiny-ner", reason="deadline") >= 1
    assert server.inference.ExtractEntities(I.ExtractEntitiesRequest(model="tiny-ner", texts=["Berlin"]))


def test_huge_ner_requests_are_refused_before_windowing_when_over_capacity(model_store: Path) -> None:
    """Concurrent NER requests of long texts: beyond the token bound they are refused at once
    (RESOURCE_EXHAUSTED, by their estimated cost, counted as queue_full); the others finish; past the window
    cap a request is INVALID_ARGUMENT; the server serves afterwards."""
    proc = ServerProcess(
        model_store,
        "--max-queue-tokens",
        "20000",
        "--max-windows-per-request",
        "1500",
        "--intra-op-threads",
        "1",
    )
    request = I.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG])

    def call(_: int) -> grpc.StatusCode:
        try:
            proc.inference.ExtractEntities(request, timeout=120)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
            assert "queue limit" in exc.details() and "20000 tokens" in exc.details()
            return exc.code()
        return grpc.StatusCode.OK

    try:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(call, range(64)))
        assert grpc.StatusCode.OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        text = proc.scrape()
        refused = metric_value(
            text, "tuneserve_refused_requests_total", model="tiny-ner", reason="queue_full"
        )
        assert refused == codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
        try:
            proc.inference.ExtractEntities(I.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG] * 4))
            raise AssertionError("a request of about 2,400 windows passed a cap of 1,500")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
            assert "at most 1500 are allowed per request" in exc.details()
        assert proc.inference.Classify(OK, timeout=10).results
        assert proc.inference.ExtractEntities(request, timeout=60).results
    finally:
        assert proc.stop() == 0


def test_rows_whose_deadline_passed_are_never_run(server: ServerProcess) -> None:
    """Small calls with tight deadlines behind a flood: each is refused, or dropped when its deadline
    passes; the rows run are only those of calls that were answered OK."""
    texts = ["a rather long sentence that fills all of the tiny model's thirty-two token window " * 2] * 64
    flood = I.ClassifyRequest(model="tiny-sentiment", texts=texts)
    before = server.scrape()
    ok_rows = 0
    lock = threading.Lock()

    def call(i: int) -> grpc.StatusCode:
        nonlocal ok_rows
        request = flood if i % 2 == 0 else I.ClassifyRequest(model="tiny-sentiment", texts=texts[:8])
        try:
            server.inference.Classify(request, timeout=60 if i % 2 == 0 else 0.003)
        except grpc.RpcError as exc:
            return exc.code()
        with lock:
            ok_rows += len(request.texts)
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(call, range(96)))
    after = server.scrape()
    assert set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes or grpc.StatusCode.RESOURCE_EXHAUSTED in codes

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    run_rows = delta("tuneserve_batch_size_sum", model="tiny-sentiment")
    # Every row run belongs to an answered call, except rows of a call one of whose other rows failed
    # while they ran: a run is never started for a row already past its deadline.
    assert run_rows <= ok_rows + 64, (run_rows, ok_rows)
    assert server.inference.Classify(OK, timeout=10).results


def test_grpc_backlog_is_capped(model_store: Path) -> None:
    """Past --max-concurrent-rpcs, gRPC refuses at once (RESOURCE_EXHAUSTED) instead of queueing."""
    proc = ServerProcess(model_store, "--max-concurrent-rpcs", "2")
    feeds: list[queue.Queue[I.ClassifyRequest | None]] = [queue.Queue(), queue.Queue()]

    def requests(feed: queue.Queue[I.ClassifyRequest | None]) -> Iterator[I.ClassifyRequest]:
        while (item := feed.get()) is not None:
            yield item

    try:
        streams = [proc.inference.ClassifyStream(requests(f), timeout=60) for f in feeds]
        for feed, stream in zip(feeds, streams, strict=True):
            feed.put(OK)
            assert next(stream).results  # both streams are open and answered
        try:
            proc.inference.Classify(OK, timeout=10)
            raise AssertionError("a third call was accepted with two streams open and a limit of 2")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
        for feed, stream in zip(feeds, streams, strict=True):
            feed.put(None)
            assert list(stream) == []
        wait_for(lambda: metric_value(proc.scrape(), "tuneserve_in_flight_requests") == 0)
        assert proc.inference.Classify(OK, timeout=10).results
    finally:
        assert proc.stop() == 0


def test_an_open_stream_ends_at_the_drain(model_store: Path) -> None:
    """SIGTERM with a ClassifyStream open and idle: the stream ends with UNAVAILABLE after its answered
    requests, the drain does not wait out the grace period (60 s > the 30 s stop timeout), and the log's
    in_flight_cut is 0."""
    proc = ServerProcess(model_store, "--grace-period", "60")
    feed: queue.Queue[I.ClassifyRequest | None] = queue.Queue()

    def requests() -> Iterator[I.ClassifyRequest]:
        while (item := feed.get()) is not None:
            yield item

    try:
        stream = proc.inference.ClassifyStream(requests(), timeout=120)
        for _ in range(3):
            feed.put(OK)
            assert next(stream).results
        proc.proc.send_signal(signal.SIGTERM)
        try:
            next(stream)
            raise AssertionError("the stream went on after the drain started")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            assert "shutting down" in exc.details()
        # The drain ends by itself. proc.stop() alone would send a second SIGTERM ("stop now"), which
        # could reach the server before it counted the ended stream out, and cut it.
        assert proc.proc.wait(30) == 0
        assert proc.stop() == 0
        assert proc.wait_event("stopped")["in_flight_cut"] == 0
    finally:
        feed.put(None)
        proc.stop(signal.SIGKILL)


def test_calls_cut_at_the_end_of_the_grace_period_are_counted(model_store: Path) -> None:
    """Calls still running when the grace period ends are counted in the log's in_flight_cut."""
    proc = ServerProcess(
        model_store,
        "--grace-period",
        "0",
        "--max-queue",
        "100000",
        "--max-queue-tokens",
        "10000000",
        "--intra-op-threads",
        "1",
    )
    request = I.ExtractEntitiesRequest(model="tiny-ner", texts=[LONG])
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(proc.inference.ExtractEntities, request) for _ in range(4)]
            wait_for(lambda: metric_value(proc.scrape(), "tuneserve_in_flight_requests") >= 4)
            assert proc.stop() == 0
            for f in futures:
                f.exception()
        assert proc.wait_event("stopped")["in_flight_cut"] >= 1
    finally:
        proc.stop(signal.SIGKILL)
