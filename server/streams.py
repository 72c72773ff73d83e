"""Bidirectional streams: each request answered by one response, in request order, processed concurrently.

At most ``max_in_flight`` requests of one stream are processed at a time (reading pauses beyond that).
The first failing request ends the stream with its error, after the responses before it were sent;
requests still running are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def ordered(
    requests: AsyncIterable[Req], handle: Callable[[Req], Awaitable[Resp]], max_in_flight: int
) -> AsyncIterator[Resp]:
    slots = asyncio.Semaphore(max_in_flight)
    pending: asyncio.Queue[asyncio.Future[Resp] | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async for request in requests:
                await slots.acquire()
                pending.put_nowait(asyncio.ensure_future(handle(request)))
        finally:
            pending.put_nowait(None)

    reader = asyncio.ensure_future(read())
    try:
        while (task := await pending.get()) is not None:
            try:
                response = await task
            finally:
                slots.release()
            yield response
        await reader  # surfaces an error of the request stream itself
    finally:
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
