"""``Batcher``: merges already-tokenized rows from concurrent callers into ONNX Runtime runs.

One per loaded model version. Callers ``submit`` rows and await their own results; a single worker task
takes rows from the queue in arrival order and runs them together, bounded by:

- ``max_batch_size`` rows and ``max_batch_tokens`` padded tokens (rows x longest row; a row longer than
  the budget runs alone),
- ``max_wait_us``: while the model is busy, the oldest queued row may wait this long for company. A
  request reaching an idle model (empty queue, no run in progress) runs at once: the window never costs
  a lone request anything. Under load, rows queue up during a run and the next run takes them all.
  What reaches an idle model runs with ``run_idle`` (the runtime's spinning session), the rest with ``run``.

A single row reaching an idle model is run by its caller's task itself rather than by the worker (the
direct path): that spares it a wake-up of the worker task on the way in and another on the way out.
``_busy`` tells both paths whether a run is in progress, so rows arriving meanwhile queue up for the
worker as before.

Rows of very different lengths are not padded together: a batch taken from the queue is sorted by length
and cut into runs of similar lengths where that costs less than the padding it saves (``split_by_length``;
a run costs about ``RUN_OVERHEAD_TOKENS`` plus its padded tokens). Shorter runs go first.

ORT runs in a dedicated thread (``RunThread``), off the event loop. If a run fails, its rows are re-run one
by one so that the error belongs to the row that caused it and the other callers still get results.

Admission is by cost, before any expensive step: ``admit`` takes a request's estimated rows and tokens
(before it is tokenized or windowed) and holds them in a ``Ticket`` until ``submit`` replaces the estimate
with the real rows. It raises ``Overloaded`` (with retry advice) at once when the rows or tokens queued,
running or held would pass ``max_queue`` / ``max_queue_tokens``, or when the request could not finish
within its deadline at the queue's measured drain rate (tokens per second of wall time while the model is
busy, weighted by tokens; until the first run, the bounds alone admit). A request reaching an idle model is
always admitted by the bounds (not by the deadline). Rows whose caller went away or whose deadline passed
are dropped, never computed: the check is made again right before each run. Once a burst is over (idle for
a second after many tokens), freed heap memory is given back to the system (``malloc_trim``), so that RSS
does not stay at the burst's peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tuneserve.encoding import Row
from tuneserve.server import tracing
from tuneserve.server.errors import DeadlineExceeded, ModelNotReady, Overloaded
from tuneserve.server.settings import BatchSettings

RunFn = Callable[[Sequence[Row]], np.ndarray]
# The fixed cost of one ORT run, in padded tokens: a rough estimate from MiniLM-L6 on 2 CPU cores (int8
# and fp32; batch 1 against length-sorted batches of 32), where a run costs about as much as 16 more
# padded tokens in a larger run. Not finely tuned.
RUN_OVERHEAD_TOKENS = 16
# Admission by deadline wants the predicted wait to fit this many times within the time left: the rate
# is a moving average, and a call also spends time outside the queue (tokenizing, answering).
DEADLINE_MARGIN = 1.25
# Weight of the past in the drain rate, per run: about the last ten runs count.
RATE_DECAY = 0.9
# After this many tokens were run, a batcher idle for TRIM_IDLE_S gives freed heap memory back.
TRIM_AFTER_TOKENS = 16_384
TRIM_IDLE_S = 1.0


class BatchObserver(Protocol):
    """Where the batcher reports what it does (``metrics.py`` implements it)."""

    def queue_depth(self, rows: int) -> None: ...

    def batch(self, size: int, tokens: int, queue_waits: Sequence[float], seconds: float) -> None: ...

    def tokenized(self, seconds: float, tokens: int) -> None: ...

    def dropped(self, reason: str, rows: int) -> None: ...

    def refused(self, reason: str) -> None: ...


class NullObserver:
    def queue_depth(self, rows: int) -> None:
        pass

    def batch(self, size: int, tokens: int, queue_waits: Sequence[float], seconds: float) -> None:
        pass

    def tokenized(self, seconds: float, tokens: int) -> None:
        pass

    def dropped(self, reason: str, rows: int) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass


AfterFn = Callable[[BaseException | None], None]
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[np.ndarray]", RunFn, Sequence[Row], AfterFn | None]


class RunThread:
    """One thread that runs the batcher's calls in order and hands each result back to the event loop.

    Written by hand rather than ``loop.run_in_executor`` on a one-worker ``ThreadPoolExecutor``: that path
    costs a lone request about 0.15 ms more per run on 2 CPU cores (the executor's future, its lock and
    callback chain, and its worker's bookkeeping holding the GIL just as the event loop wakes for the
    result), which is several percent of a batch-1 MiniLM run. Here a run is one queue put and one
    ``call_soon_threadsafe``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def run(self, fn: RunFn, rows: Sequence[Row], after: AfterFn | None = None) -> asyncio.Future[np.ndarray]:
        """Queue ``fn(rows)``; the returned future (of the running loop) gets its result or exception.

        ``after(error)`` is called on the loop once the run is over, even if the future was cancelled.
        """
        if self._stopped:
            raise RuntimeError(f"{self._name} is stopped")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._jobs.put((loop, future, fn, rows, after))
        return future

    def stop(self) -> None:
        """Refuse new calls; the thread finishes those already queued, then exits."""
        self._stopped = True
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, rows, after = job
            try:
                result, error = fn(rows), None
            except Exception as exc:
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(_deliver, future, result, error, after)


class Ticket:
    """Capacity held for one request from ``admit`` until its rows are queued (or it gives up).

    ``with`` releases it on the way out; ``submit`` releases it once the real rows are counted instead.
    """

    __slots__ = ("_batcher", "rows", "tokens")

    def __init__(self, batcher: Batcher | None, rows: int, tokens: int) -> None:
        self._batcher = batcher
        self.rows = rows
        self.tokens = tokens

    def release(self) -> None:
        if self._batcher is not None:
            self._batcher._held_rows -= self.rows
            self._batcher._held_tokens -= self.tokens
            self._batcher = None

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False)
class _Item:
    row: Row
    future: asyncio.Future[np.ndarray]
    enqueued: float  # loop.time()
    deadline: float | None  # loop.time(); None: no deadline
    busy: bool  # the model was busy when the row arrived: it may wait for company, and runs with ``run``
    tokens: int
    trace: object = None  # the caller's tracing context (``tracing.current()``), None when tracing is off
    queued_ns: int = 0  # time.time_ns() when queued, for its span; 0 when tracing is off


class Batcher:
    """Dynamic batching for one model version (see the module docstring)."""

    def __init__(
        self,
        run: RunFn,
        settings: BatchSettings,
        *,
        label: str = "model",
        observer: BatchObserver | None = None,
        run_idle: RunFn | None = None,
        model: str = "",
        version: int = 0,
    ) -> None:
        self._run = run
        self.model = model  # for spans
        self.version = version
        self._run_idle = run_idle or run  # for rows that reach an idle model
        self.settings = settings
        self.label = label
        self._observer: BatchObserver = observer or NullObserver()
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._pending = 0  # rows admitted and not finished (queued or running)
        self._pending_tokens = 0  # their tokens
        self._held_rows = 0  # rows and tokens held by tickets (estimates of requests being tokenized)
        self._held_tokens = 0
        self._rate = 0.0  # tokens per second of wall time while busy; 0: not measured
        self._rate_tokens = 0.0  # decayed sums of tokens run and busy seconds: their ratio is the rate,
        self._rate_seconds = 0.0  # weighted by tokens (a lone short row says little about a long queue)
        self._untrimmed = 0  # tokens run since memory was last given back
        self._last_end = 0.0  # perf_counter() at the end of the last run
        self._busy = False  # a run is in progress (the worker's or a direct one)
        self._closed = False
        self._batch_seconds = 0.0  # moving average of one run, for retry advice
        self._runner = RunThread(f"ort-{label}")
        self._worker: asyncio.Task[None] | None = None

    @property
    def observer(self) -> BatchObserver:
        return self._observer

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.label}")

    @property
    def drain_rate(self) -> float:
        """Measured tokens per second while busy (0: nothing measured yet)."""
        return self._rate

    def admit(self, rows: int, tokens: int, deadline: float | None = None) -> Ticket:
        """Hold ``rows`` and ``tokens`` (estimates are fine) for a request about to be tokenized, or raise.

        Raises ``ModelNotReady`` if closing, ``DeadlineExceeded`` if ``deadline`` (``loop.time()`` terms)
        has passed, ``Overloaded`` if the bounds would be passed or the request could not finish in time.
        """
        if self._closed:
            raise ModelNotReady(f"{self.label} is being unloaded; retry (version 0 gets the serving version)")
        load_rows = self._pending + self._held_rows
        load_tokens = self._pending_tokens + self._held_tokens
        if load_rows and (
            load_rows + rows > self.settings.max_queue
            or load_tokens + tokens > self.settings.max_queue_tokens
        ):
            self._observer.refused("queue_full")
            raise Overloaded(self._overloaded_message(rows, tokens))
        if deadline is not None:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                self._observer.refused("deadline")
                raise DeadlineExceeded(
                    f"the call's deadline passed before it reached {self.label}; allow a longer deadline"
                )
            if self._rate and (need := (load_tokens + tokens) / self._rate) * DEADLINE_MARGIN > left:
                self._observer.refused("deadline")
                raise Overloaded(
                    f"{self.label} cannot finish this request within its deadline: its ~{tokens} tokens "
                    f"would wait behind {load_tokens} queued, about {need:.2f} s at the measured "
                    f"{self._rate:.0f} tokens/s, and {left:.2f} s are left; retry in about "
                    f"{self._retry_ms(round((need * DEADLINE_MARGIN - left) * self._rate))} ms with "
                    "exponential backoff, allow a longer deadline, or send "
                    "fewer texts per call"
                )
        self._held_rows += rows
        self._held_tokens += tokens
        return Ticket(self, rows, tokens)

    async def submit(
        self, rows: Sequence[Row], deadline: float | None = None, ticket: Ticket | None = None
    ) -> list[np.ndarray]:
        """Queue ``rows`` and return their outputs in order: ``[labels]`` or ``[tokens, labels]`` each.

        ``deadline`` is in ``loop.time()`` terms. Without a ``ticket`` (from ``admit``) the rows are
        admitted here; with one they were admitted by estimate, and the ticket is released. Raises
        ``Overloaded`` when the queue is full, ``DeadlineExceeded`` when the deadline passes before the
        rows run, or the run's error.
        """
        if ticket is None:
            ticket = self.admit(len(rows), sum(len(r.ids) for r in rows), deadline)
        ticket.release()
        if self._closed:
            raise ModelNotReady(f"{self.label} is being unloaded; retry (version 0 gets the serving version)")
        self.start()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if len(rows) == 1 and not self._busy and not self._queue and (deadline is None or deadline > now):
            return [await self._run_direct(rows[0])]
        ctx = tracing.current()
        queued_ns = time.time_ns() if ctx is not None else 0
        items = [
            _Item(row, loop.create_future(), now, deadline, self._busy, len(row.ids), ctx, queued_ns)
            for row in rows
        ]
        self._pending += len(items)
        for item in items:
            self._pending_tokens += item.tokens
            item.future.add_done_callback(functools.partial(self._release, item.tokens))
        self._queue.extend(items)
        self._observer.queue_depth(len(self._queue))
        self._wakeup.set()
        futures = [item.future for item in items]
        try:
            if len(futures) == 1:  # the common case; gather would cost the caller another loop iteration
                return [await futures[0]]
            return list(await asyncio.gather(*futures))
        except BaseException:
            for f in futures:
                if not f.done():
                    f.cancel()
                elif not f.cancelled():
                    f.exception()  # retrieved: no "exception was never retrieved" noise
            raise

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new rows, let queued and running ones finish (up to ``timeout``), then stop the worker."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._pending:
                    await asyncio.sleep(0.005)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(
                    ModelNotReady(f"{self.label} was unloaded before this text ran; retry")
                )
        self._queue.clear()
        self._runner.stop()

    def _release(self, tokens: int, _: asyncio.Future[np.ndarray]) -> None:
        self._pending -= 1
        self._pending_tokens -= tokens

    async def _run_direct(self, row: Row) -> np.ndarray:
        """Run one row on the idle model from the caller's task (see the module docstring)."""
        t0 = time.perf_counter()
        ctx = tracing.current()
        t0_ns = time.time_ns() if ctx is not None else 0

        def after(error: BaseException | None) -> None:  # the run is over, even if the caller left
            if ctx is not None:
                tracing.record_run([ctx], [t0_ns], t0_ns, time.time_ns(), self.model, self.version)
            self._busy = False
            self._pending -= 1
            self._pending_tokens -= tokens
            if self._queue:
                self._wakeup.set()
            if error is None:
                self._record([row], [0.0], t0)

        tokens = len(row.ids)
        run = self._runner.run(self._run_idle, [row], after)
        self._busy = True
        self._pending += 1
        self._pending_tokens += tokens
        return _row_output(await run, 0, row)

    def _record(self, rows: Sequence[Row], waits: Sequence[float], t0: float) -> None:
        """Account a run that started at ``t0`` (``perf_counter``) and just ended."""
        end = time.perf_counter()
        seconds = end - t0
        tokens = sum(len(r.ids) for r in rows)
        # The drain rate counts the time since the previous run ended when runs follow each other (the
        # event loop's work between runs slows the queue's drain too), the run alone after an idle spell.
        busy = end - max(t0, self._last_end)
        self._last_end = end
        if busy > 0:
            self._rate_tokens = RATE_DECAY * self._rate_tokens + tokens
            self._rate_seconds = RATE_DECAY * self._rate_seconds + busy
            self._rate = self._rate_tokens / self._rate_seconds
        self._untrimmed += tokens
        self._batch_seconds = (
            seconds if not self._batch_seconds else 0.8 * self._batch_seconds + 0.2 * seconds
        )
        self._observer.batch(len(rows), tokens, waits, seconds)

    def _retry_ms(self, tokens: int = 0) -> int:
        """Retry advice, in ms: about how long until ``tokens`` fewer are queued or running, at the
        measured rate (all of them when 0)."""
        load = self._pending_tokens + self._held_tokens
        if self._rate:
            return max(1, round(min(load, tokens or load) / self._rate * 1000))
        if not self._batch_seconds:
            return 100  # nothing has run yet: a guess
        batches = math.ceil((self._pending + self._held_rows) / self.settings.max_batch_size)
        return max(1, round(batches * self._batch_seconds * 1000))

    def _overloaded_message(self, rows: int, tokens: int) -> str:
        load_rows = self._pending + self._held_rows
        load_tokens = self._pending_tokens + self._held_tokens
        # Until enough has drained for this request to fit under both bounds.
        over_rows = (load_rows + rows - self.settings.max_queue) * load_tokens / max(1, load_rows)
        over = max(load_tokens + tokens - self.settings.max_queue_tokens, round(over_rows), 1)
        return (
            f"{self.label} is overloaded: {load_rows} rows (texts, or windows of long "
            f"texts) and {load_tokens} tokens are queued or running, and "
            f"{rows} rows / ~{tokens} tokens more would pass the queue limit of {self.settings.max_queue} "
            f"rows / {self.settings.max_queue_tokens} tokens; retry in about {self._retry_ms(over)} ms with "
            "exponential backoff (or send fewer texts per call)"
        )

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        just_ran = False  # rows still queued after the worker's run waited for it
        while True:
            if not self._queue or self._busy:
                just_ran = False
                while not self._queue or self._busy:  # a direct run sets the wakeup when it ends
                    self._wakeup.clear()
                    await self._idle_wait()
            busy = just_ran or self._queue[0].busy
            if busy and self.settings.max_wait_us:
                await self._fill(loop)
            batch = self._take(loop.time())
            just_ran = bool(batch)
            if batch:
                self._busy = True
                try:
                    await self._execute(loop, batch, self._run if busy else self._run_idle)
                finally:
                    self._busy = False

    async def _idle_wait(self) -> None:
        """Wait for the wakeup; once a burst is over (idle for ``TRIM_IDLE_S`` after ``TRIM_AFTER_TOKENS``
        tokens or more), give freed heap memory back to the system, in the run thread."""
        if self._untrimmed < TRIM_AFTER_TOKENS:
            await self._wakeup.wait()
            return
        try:
            async with asyncio.timeout(TRIM_IDLE_S):
                await self._wakeup.wait()
        except TimeoutError:
            if not self._busy and not self._queue:
                self._untrimmed = 0
                self._runner.run(_trim_memory, ())

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for more rows until the batch is full or the oldest row has waited ``max_wait_us``."""
        until = self._queue[0].enqueued + self.settings.max_wait_us / 1e6
        while len(self._queue) < self.settings.max_batch_size:
            delay = until - loop.time()
            if delay <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _unwanted(self, item: _Item, now: float) -> bool:
        """Whether ``item`` must not run: its caller went away, or its deadline passed (then failed here)."""
        if item.future.done():  # the caller went away (cancelled, or another of its rows failed)
            self._observer.dropped("cancelled", 1)
            return True
        if item.deadline is not None and item.deadline <= now:
            self._observer.dropped("deadline", 1)
            item.future.set_exception(
                DeadlineExceeded(
                    f"the call's deadline passed after {now - item.enqueued:.3f} s in the queue of "
                    f"{self.label}, before it could run; allow a longer deadline or retry when the "
                    "server is less busy"
                )
            )
            return True
        return False

    def _take(self, now: float) -> list[_Item]:
        batch: list[_Item] = []
        width = 0
        while self._queue and len(batch) < self.settings.max_batch_size:
            item = self._queue[0]
            if self._unwanted(item, now):
                self._queue.popleft()
                continue
            new_width = max(width, len(item.row.ids))
            if batch and new_width * (len(batch) + 1) > self.settings.max_batch_tokens:
                break
            self._queue.popleft()
            batch.append(item)
            width = new_width
        self._observer.queue_depth(len(self._queue))
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], fn: RunFn) -> None:
        if len(batch) == 1:
            await self._execute_run(loop, batch, fn)
            return
        lengths = [len(item.row.ids) for item in batch]
        for run in split_by_length(lengths, RUN_OVERHEAD_TOKENS):
            await self._execute_run(loop, [batch[i] for i in run], fn)

    async def _execute_run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], fn: RunFn) -> None:
        start = loop.time()
        batch = [item for item in batch if not self._unwanted(item, start)]  # again, right before the run
        if not batch:
            return
        rows = [item.row for item in batch]
        waits = [start - item.enqueued for item in batch]
        t0 = time.perf_counter()
        t0_ns = time.time_ns() if tracing.enabled() else 0
        try:
            out = await self._runner.run(fn, rows)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, None, exc)
            else:
                await self._execute_singly(batch, fn)
            return
        self._record(rows, waits, t0)
        if t0_ns:
            contexts = [item.trace for item in batch]
            queued = [item.queued_ns for item in batch]
            tracing.record_run(contexts, queued, t0_ns, time.time_ns(), self.model, self.version)  # type: ignore[arg-type]
        for i, item in enumerate(batch):
            _settle(item.future, _row_output(out, i, item.row), None)

    async def _execute_singly(self, batch: list[_Item], fn: RunFn) -> None:
        for item in batch:
            if item.future.done():
                continue
            try:
                out = await self._runner.run(fn, [item.row])
            except Exception as exc:
                _settle(item.future, None, exc)
            else:
                _settle(item.future, _row_output(out, 0, item.row), None)


def split_by_length(lengths: Sequence[int], overhead: int) -> list[list[int]]:
    """Indices of ``lengths`` in runs of similar lengths, shortest first, minimizing the total padded tokens
    plus ``overhead`` per run. Equal lengths stay together and in order (the sort is stable)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    widths = [lengths[i] for i in order]
    # Runs are contiguous in sorted order: best[j] is the cheapest cost of the first j rows, cut[j] where
    # its last run starts. Only a change of width can start a run worth having.
    starts = [0] + [j for j in range(1, len(widths)) if widths[j] != widths[j - 1]]
    best = [0.0] * (len(widths) + 1)
    cut = [0] * (len(widths) + 1)
    ends = [*starts[1:], len(widths)]
    for j in ends:
        width = widths[j - 1]
        best[j], cut[j] = min((best[i] + overhead + (j - i) * width, i) for i in starts if i < j)
    runs: list[list[int]] = []
    j = len(widths)
    while j:
        runs.append(order[cut[j] : j])
        j = cut[j]
    runs.reverse()
    return runs


def _trim_memory(_: Sequence[Row]) -> np.ndarray:
    """Return freed heap memory to the system (glibc's ``malloc_trim``; nothing elsewhere)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    return np.empty(0)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


_MALLOC_TRIM = _malloc_trim()


def _row_output(out: np.ndarray, i: int, row: Row) -> np.ndarray:
    """Row ``i`` of a run's logits; token outputs (``[batch, tokens, labels]``) cut to the row's tokens."""
    return out[i, : len(row.ids)] if out.ndim == 3 else out[i]


def _deliver(
    future: asyncio.Future[np.ndarray],
    value: np.ndarray | None,
    exc: BaseException | None,
    after: AfterFn | None,
) -> None:
    """Settle a run's future (which schedules its caller), then tell ``after``."""
    _settle(future, value, exc)
    if after is not None:
        after(exc)


def _settle(future: asyncio.Future[np.ndarray], value: np.ndarray | None, exc: BaseException | None) -> None:
    if future.done():  # the caller went away (cancelled), or another of its rows already failed
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert value is not None
        future.set_result(value)
