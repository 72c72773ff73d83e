"""Bidirectional streams: each request answered by one response, in request order, processed concurrently.

At most ``max_in_flight`` requests of one stream are processed at a time (reading pauses beyond that).
The first failing request ends the stream with its error, after the responses before it were sent;
requests still running are cancelled.

When ``stop`` is set (the server drains), the stream stops reading at once, finishes the requests it
already read, sends their responses, and then ends with UNAVAILABLE (``ModelNotReady``), so that an open
stream never holds a drain for its whole grace period and the client knows to reopen it elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from tuneserve.server.errors import ModelNotReady

Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def ordered(
    requests: AsyncIterable[Req],
    handle: Callable[[Req], Awaitable[Resp]],
    max_in_flight: int,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Resp]:
    slots = asyncio.Semaphore(max_in_flight)
    pending: asyncio.Queue[asyncio.Future[Resp] | None] = asyncio.Queue()
    answered = 0

    async def read() -> None:
        try:
            async for request in requests:
                await slots.acquire()
                pending.put_nowait(asyncio.ensure_future(handle(request)))
        finally:
            pending.put_nowait(None)

    reader = asyncio.ensure_future(read())
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopped is not None:
        stopped.add_done_callback(lambda _: reader.cancel())  # stop reading; what was read still runs
    try:
        while (task := await pending.get()) is not None:
            try:
                response = await task
            finally:
                slots.release()
            answered += 1
            yield response
        if stopped is not None and stopped.done() and reader.cancelled():
            raise ModelNotReady(
                f"the server is shutting down: this stream ends after {answered} responses, one for each "
                "request it read; reopen it and send the rest again (another replica, or this one after its "
                "restart, will answer)"
            )
        await reader  # surfaces an error of the request stream itself
    finally:
        if stopped is not None:
            stopped.cancel()
        reader.cancel()
        while not pending.empty():
            leftover = pending.get_nowait()
            if leftover is None:
                continue
            if leftover.done() and not leftover.cancelled():
                leftover.exception()  # retrieved: no "exception was never retrieved" noise
            leftover.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
