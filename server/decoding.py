"""Requests that are not valid protobuf are the caller's mistake: INVALID_ARGUMENT, not gRPC's UNKNOWN.

grpc.aio parses each request with the method handler's ``request_deserializer`` before any servicer code
runs, and answers UNKNOWN ("Unexpected <class 'DecodeError'>") when that raises. ``parse_in_handler``
takes the parsing over: grpc hands the raw bytes on, and the handler parses them where a bad message can be
answered INVALID_ARGUMENT with the message type named. Every RPC, health and reflection included.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

Parse = Callable[[bytes], Any]


def parse_in_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with its requests parsed inside the call (a bad one: INVALID_ARGUMENT)."""
    h: Any = handler
    parse = h.request_deserializer
    if parse is None:
        return handler
    if h.unary_unary:
        return h._replace(request_deserializer=None, unary_unary=_one(parse, h.unary_unary))
    if h.unary_stream:
        return h._replace(request_deserializer=None, unary_stream=_one(parse, h.unary_stream))
    if h.stream_unary:
        return h._replace(request_deserializer=None, stream_unary=_many(parse, h.stream_unary))
    return h._replace(request_deserializer=None, stream_stream=_many(parse, h.stream_stream))


async def _parse(parse: Parse, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    try:
        return parse(raw)
    except DecodeError as exc:
        kind = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
        name = kind.full_name if kind is not None else "request"
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid {name} message ({len(raw)} bytes): {exc}; send it as that "
            "protobuf message, with strings in UTF-8",
        )


async def _parsed(
    parse: Parse, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[Any]:
    async for raw in requests:
        yield await _parse(parse, raw, context)


def _wrap(behavior: Any, first: Callable[[Any, Any], Any]) -> Any:
    """A handler of the same kind as ``behavior`` (grpc.aio treats coroutines, async generators and
    plain functions differently) that calls ``behavior`` with ``await first(raw, context)``."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async for response in behavior(await first(raw, context), context):
                yield response

        return stream

    async def call(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        result = behavior(await first(raw, context), context)
        return await result if inspect.isawaitable(result) else result

    return call


def _one(parse: Parse, behavior: Any) -> Any:
    async def first(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await _parse(parse, raw, context)

    return _wrap(behavior, first)


def _many(parse: Parse, behavior: Any) -> Any:
    async def first(raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return _parsed(parse, raw, context)

    return _wrap(behavior, first)
