"""The batcher with a fake runtime: merging, bounds, the idle fast path, admission, deadlines,
cancellation and per-item errors."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np
import pytest

from tuneserve.encoding import Row
from tuneserve.server.batcher import Batcher, split_by_length
from tuneserve.server.errors import DeadlineExceeded, ModelNotReady, Overloaded
from tuneserve.server.settings import BatchSettings

POISON = 666


def sync(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in a fresh event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def row(marker: int, length: int = 4) -> Row:
    return Row(ids=[marker] + [1] * (length - 1), type_ids=[0] * length, word_ids=[None] * length)


class FakeRuntime:
    """Logits ``[batch, 2]`` = (marker, row length); fails a batch holding a POISON row; can be slowed."""

    def __init__(self, delay: float = 0.0, tokens: bool = False) -> None:
        self.delay = delay
        self.tokens = tokens
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, rows: Sequence[Row]) -> np.ndarray:
        self.gate.wait(10)
        self.batches.append([r.ids[0] for r in rows])
        if any(r.ids[0] == POISON for r in rows):
            raise RuntimeError("poisoned row")
        time.sleep(self.delay)
        if self.tokens:
            width = max(len(r.ids) for r in rows)
            out = np.zeros((len(rows), width, 2), dtype=np.float32)
            for i, r in enumerate(rows):
                out[i, :, 0] = r.ids[0]
            return out
        return np.array([[r.ids[0], len(r.ids)] for r in rows], dtype=np.float32)

    @property
    def seen(self) -> set[int]:
        return {m for b in self.batches for m in b}


def settings(**kw: int) -> BatchSettings:
    return BatchSettings(
        **{"max_batch_size": 8, "max_batch_tokens": 10_000, "max_wait_us": 0, "max_queue": 100, **kw}
    )


@sync
async def test_lone_request_runs_at_once_despite_a_long_window() -> None:
    fake = FakeRuntime()
    batcher = Batcher(fake, settings(max_wait_us=1_000_000))
    start = time.perf_counter()
    (out,) = await batcher.submit([row(7)])
    assert time.perf_counter() - start < 0.5
    assert out.tolist() == [7, 4]
    start = time.perf_counter()
    await batcher.submit([row(8)])  # idle again: no wait either
    assert time.perf_counter() - start < 0.5
    await batcher.close()


@sync
async def test_concurrent_callers_share_runs_within_bounds() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings(max_batch_size=4))
    first = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)  # the first call is running; the next ones queue behind it
    rest = [asyncio.ensure_future(batcher.submit([row(i)])) for i in range(10)]
    fake.gate.set()
    results = await asyncio.gather(first, *rest)
    assert [r[0].tolist()[0] for r in results] == [100, *range(10)]  # each caller gets its own row back
    assert fake.batches[0] == [100]
    assert max(len(b) for b in fake.batches) == 4
    assert len(fake.batches) == 1 + 3  # 10 queued rows in runs of at most 4
    await batcher.close()


@sync
async def test_window_waits_for_company_only_when_busy() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings(max_batch_size=16, max_wait_us=300_000))
    first = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.submit([row(1)]))  # queued behind the run: may wait for company
    await asyncio.sleep(0.01)
    fake.gate.set()
    await first  # the first run is over; the window (from row 1's arrival) is still open
    third = asyncio.ensure_future(batcher.submit([row(2)]))
    await asyncio.gather(first, second, third)
    assert fake.batches == [[100], [1, 2]]
    await batcher.close()


@sync
async def test_token_budget_bounds_a_batch() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings(max_batch_tokens=35))
    blocker = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(batcher.submit([row(i, length=10) for i in range(7)]))
    await asyncio.sleep(0.01)
    fake.gate.set()
    await asyncio.gather(blocker, queued)
    # 10-token rows under a 35-token budget: at most 3 per run.
    assert [len(b) for b in fake.batches[1:]] == [3, 3, 1]
    await batcher.close()


@sync
async def test_a_row_longer_than_the_budget_runs_alone() -> None:
    fake = FakeRuntime()
    batcher = Batcher(fake, settings(max_batch_tokens=5))
    (out,) = await batcher.submit([row(1, length=50)])
    assert out.tolist() == [1, 50]
    await batcher.close()


@sync
async def test_token_outputs_are_cut_to_each_row() -> None:
    fake = FakeRuntime(tokens=True)
    batcher = Batcher(fake, settings())
    short, long = await batcher.submit([row(1, length=3), row(2, length=9)])
    assert short.shape == (3, 2) and long.shape == (9, 2)
    await batcher.close()


@sync
async def test_full_queue_is_overloaded_at_once() -> None:
    fake = FakeRuntime()
    fake.gate.clear()  # hold the runtime
    batcher = Batcher(fake, settings(max_queue=10))
    held = asyncio.ensure_future(batcher.submit([row(i) for i in range(8)]))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as info:
        await batcher.submit([row(50) for _ in range(3)])
    assert "queue limit of 10" in info.value.message and "retry in about" in info.value.message
    fits = asyncio.ensure_future(batcher.submit([row(60), row(61)]))  # two more still fit
    fake.gate.set()
    await asyncio.gather(held, fits)
    assert 50 not in fake.seen
    await batcher.close()


@sync
async def test_an_oversized_request_is_admitted_on_an_idle_model() -> None:
    batcher = Batcher(FakeRuntime(), settings(max_queue=2, max_batch_size=64))
    assert len(await batcher.submit([row(i) for i in range(5)])) == 5
    await batcher.close()


@sync
async def test_expired_deadline_is_dropped_not_computed() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings())
    fake.gate.set()
    await batcher.submit([row(0)])  # measures the drain rate
    fake.gate.clear()
    held = asyncio.ensure_future(batcher.submit([row(1)]))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    late = asyncio.ensure_future(batcher.submit([row(2), row(3)], deadline=loop.time() + 0.02))
    await asyncio.sleep(0.05)
    fake.gate.set()
    with pytest.raises(DeadlineExceeded, match="deadline passed"):
        await late
    await held
    assert fake.seen == {0, 1}
    assert batcher.pending == 0
    await batcher.close()


@sync
async def test_cancelled_caller_is_dropped_not_computed() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings())
    held = asyncio.ensure_future(batcher.submit([row(1)]))
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(batcher.submit([row(2)]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert batcher.pending == 1
    fake.gate.set()
    await held
    await batcher.submit([row(3)])
    assert fake.seen == {1, 3}
    await batcher.close()


@sync
async def test_an_error_belongs_to_the_row_that_caused_it() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings())
    blocker = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)
    good = asyncio.ensure_future(batcher.submit([row(1)]))
    bad = asyncio.ensure_future(batcher.submit([row(POISON)]))
    other = asyncio.ensure_future(batcher.submit([row(2)]))
    await asyncio.sleep(0.01)
    fake.gate.set()
    await blocker
    assert (await good)[0].tolist() == [1, 4]
    assert (await other)[0].tolist() == [2, 4]
    with pytest.raises(RuntimeError, match="poisoned"):
        await bad
    assert [1, POISON, 2] in fake.batches  # tried together first, then one by one
    await batcher.close()


@sync
async def test_close_lets_queued_rows_finish() -> None:
    fake = FakeRuntime(delay=0.02)
    batcher = Batcher(fake, settings(max_batch_size=2))
    calls = [asyncio.ensure_future(batcher.submit([row(i)])) for i in range(5)]
    await asyncio.sleep(0)
    await batcher.close()
    assert len(await asyncio.gather(*calls)) == 5


def test_split_by_length_cuts_where_padding_costs_more_than_a_run() -> None:
    assert split_by_length([4, 4, 4], overhead=16) == [[0, 1, 2]]  # equal lengths stay together, in order
    assert split_by_length([10, 60, 12, 58], overhead=16) == [[0, 2], [3, 1]]  # short ones first
    assert split_by_length([10, 12], overhead=16) == [[0, 1]]  # 2 tokens of padding: not worth a run
    assert split_by_length([5], overhead=0) == [[0]]


@sync
async def test_rows_of_very_different_lengths_run_apart_shortest_first() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings())
    blocker = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(
        batcher.submit([row(1, length=60), row(2, length=4), row(3, length=58), row(4, length=5)])
    )
    await asyncio.sleep(0.01)
    fake.gate.set()
    await blocker
    outs = await queued
    assert [o.tolist() for o in outs] == [[1, 60], [2, 4], [3, 58], [4, 5]]  # each caller's own row
    assert fake.batches[1:] == [[2, 4], [3, 1]]  # by length: 4, 5 then 58, 60
    await batcher.close()


@sync
async def test_rows_reaching_an_idle_model_run_with_run_idle() -> None:
    fake, idle = FakeRuntime(), FakeRuntime()
    fake.gate.clear()
    idle.gate.clear()
    batcher = Batcher(fake, settings(), run_idle=idle)
    first = asyncio.ensure_future(batcher.submit([row(1)]))  # idle model: runs with run_idle
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.submit([row(2)]))  # queued behind a run: a batch
    await asyncio.sleep(0.01)
    idle.gate.set()
    fake.gate.set()
    await asyncio.gather(first, second)
    assert idle.batches == [[1]] and fake.batches == [[2]]
    await batcher.close()


class Recorder:
    """A ``BatchObserver`` that keeps what it is told."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[float]]] = []
        self.depths: list[int] = []

    def queue_depth(self, rows: int) -> None:
        self.depths.append(rows)

    def batch(self, size: int, tokens: int, queue_waits: Sequence[float], seconds: float) -> None:
        self.batches.append((size, list(queue_waits)))

    def dropped(self, reason: str, rows: int) -> None:
        pass


@sync
async def test_a_lone_row_on_an_idle_model_skips_the_queue() -> None:
    fake, seen = FakeRuntime(), Recorder()
    batcher = Batcher(fake, settings(max_wait_us=1_000_000), observer=seen)
    for i in range(3):
        assert (await batcher.submit([row(i)]))[0].tolist() == [i, 4]
    assert seen.batches == [(1, [0.0])] * 3  # run from the caller's task: no time in a queue
    assert seen.depths == []
    assert batcher.pending == 0
    two = await batcher.submit([row(7), row(8)])  # several rows go through the queue, in one run
    assert [o.tolist()[0] for o in two] == [7, 8] and fake.batches[-1] == [7, 8]
    await batcher.close()


@sync
async def test_a_direct_run_keeps_the_model_busy_after_its_caller_left() -> None:
    fake, idle = FakeRuntime(), FakeRuntime()
    idle.gate.clear()
    batcher = Batcher(fake, settings(), run_idle=idle)
    gone = asyncio.ensure_future(batcher.submit([row(1)]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert batcher.pending == 1  # its run goes on in the thread
    later = asyncio.ensure_future(batcher.submit([row(2)]))  # queued behind that run: a batch
    await asyncio.sleep(0.01)
    assert not later.done()
    idle.gate.set()
    assert (await later)[0].tolist() == [2, 4]
    assert idle.batches == [[1]] and fake.batches == [[2]]
    with pytest.raises(RuntimeError, match="poisoned"):  # a failing direct run fails its caller only
        await batcher.submit([row(POISON)])
    assert (await batcher.submit([row(3)]))[0].tolist() == [3, 4]
    assert batcher.pending == 0
    await batcher.close()


@sync
async def test_runs_happen_off_the_event_loop_which_stays_free() -> None:
    threads: list[int] = []
    fake = FakeRuntime()
    fake.gate.clear()

    def run(rows: Sequence[Row]) -> np.ndarray:
        threads.append(threading.get_ident())
        return fake(rows)

    batcher = Batcher(run, settings())
    call = asyncio.ensure_future(batcher.submit([row(5)]))
    for _ in range(20):  # the run blocks on the gate; the loop keeps turning meanwhile
        await asyncio.sleep(0.001)
    assert not call.done()
    fake.gate.set()
    assert (await call)[0].tolist() == [5, 4]
    assert threads and threads[0] != threading.get_ident()
    await batcher.close()
    with pytest.raises(ModelNotReady):
        await batcher.submit([row(6)])


@sync
async def test_the_token_bound_refuses_before_the_row_bound() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings(max_queue=100, max_queue_tokens=50))
    held = asyncio.ensure_future(batcher.submit([row(1, length=40)]))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded, match="50 tokens"):
        await batcher.submit([row(2, length=20)])  # 2 rows of 100 would do; 60 tokens of 50 would not
    fits = asyncio.ensure_future(batcher.submit([row(3, length=10)]))
    fake.gate.set()
    await asyncio.gather(held, fits)
    assert fake.seen == {1, 3}
    await batcher.close()


@sync
async def test_a_ticket_holds_its_estimate_until_submit_or_release() -> None:
    fake = FakeRuntime()
    fake.gate.clear()
    batcher = Batcher(fake, settings(max_queue=10))
    held = asyncio.ensure_future(batcher.submit([row(1)]))
    await asyncio.sleep(0.01)
    ticket = batcher.admit(8, 32)  # a request being tokenized holds its estimated cost
    with pytest.raises(Overloaded):
        batcher.admit(2, 8)
    ticket.release()
    with batcher.admit(2, 8) as second:  # released: the capacity is back
        queued = asyncio.ensure_future(batcher.submit([row(2), row(3)], ticket=second))
        await asyncio.sleep(0)
    with batcher.admit(7, 7):
        pass
    with pytest.raises(ValueError), batcher.admit(7, 7):  # released on the way out of an error too
        raise ValueError
    batcher.admit(7, 7).release()
    fake.gate.set()
    await asyncio.gather(held, queued)
    assert batcher.pending == 0
    await batcher.close()


@sync
async def test_a_request_that_cannot_finish_in_time_is_refused_at_once() -> None:
    fake = FakeRuntime(delay=0.05)
    batcher = Batcher(fake, settings(max_batch_size=4))
    await batcher.submit([row(i, length=10) for i in range(4)])  # measures the drain rate: ~800 tokens/s
    assert 0 < batcher.drain_rate < 1000
    loop = asyncio.get_running_loop()
    with pytest.raises(Overloaded, match="cannot finish this request within its deadline"):
        batcher.admit(100, 1000, deadline=loop.time() + 0.1)  # > 1 s of work in 0.1 s
    with pytest.raises(DeadlineExceeded, match="passed before it reached"):
        batcher.admit(1, 10, deadline=loop.time() - 0.001)
    batcher.admit(100, 1000, deadline=loop.time() + 60).release()
    await batcher.submit([row(9, length=10)], deadline=loop.time() + 60)
    assert 9 in fake.seen
    await batcher.close()


@sync
async def test_rows_are_checked_again_right_before_each_run() -> None:
    """A batch cut into runs by length: rows whose deadline passed during the first run never run."""
    fake = FakeRuntime()
    fake.gate.clear()

    def run(rows: Sequence[Row]) -> np.ndarray:
        out = fake(rows)
        if rows[0].ids[0] == 1:
            time.sleep(2.5)  # the short run outlasts the long row's deadline
        return out

    batcher = Batcher(run, settings())
    fake.gate.set()
    await batcher.submit([row(0)])  # measures the drain rate
    fake.gate.clear()
    blocker = asyncio.ensure_future(batcher.submit([row(100)]))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    short = asyncio.ensure_future(batcher.submit([row(1, length=4), row(2, length=5)]))
    # A deadline long enough to be admitted even when a busy host measured a slow drain rate above.
    long = asyncio.ensure_future(batcher.submit([row(3, length=60)], deadline=loop.time() + 2.0))
    await asyncio.sleep(0.01)
    fake.gate.set()
    await asyncio.gather(blocker, short)
    with pytest.raises(DeadlineExceeded):
        await long
    assert 3 not in fake.seen
    assert batcher.pending == 0
    await batcher.close()
