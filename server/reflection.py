"""Server reflection as ``grpc.reflection.v1alpha`` and ``grpc.reflection.v1``, so grpcurl needs no files.

grpcio-reflection ships only v1alpha. v1 is the same protocol under another package name (identical
messages, field for field), so the v1alpha servicer answers both: v1 gets a method handler with the same
(de)serializers, and a copy of the v1alpha descriptor renamed to v1 is added to the descriptor pool, so
that v1 is itself listed and describable.

Python's descriptor pool cannot find the file of a method's name (``pkg.Service.Method``), which ghz and
other tools ask for: such a symbol is looked up through its service.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA = reflection.SERVICE_NAME  # grpc.reflection.v1alpha.ServerReflection
V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    renamed = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(renamed)
    renamed.name = _V1_FILE
    renamed.package = "grpc.reflection.v1"
    for message in renamed.message_type:
        for f in message.field:
            if f.type_name.startswith(".grpc.reflection.v1alpha."):
                f.type_name = f.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.", 1)
    for service in renamed.service:
        for m in service.method:
            m.input_type = m.input_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.", 1)
            m.output_type = m.output_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.", 1)
    renamed.ClearField("options")
    pool.Add(renamed)


class _ReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer, which also resolves method names (to their service's file)."""

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        parent, _, method = fully_qualified_name.rpartition(".")
        with contextlib.suppress(KeyError):
            if method in self._pool.FindServiceByName(parent).methods_by_name:
                fully_qualified_name = parent
        return super()._file_containing_symbol(request, fully_qualified_name)


def enable(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection (both versions) for ``service_names`` plus the reflection services themselves."""
    _register_v1_descriptor()
    servicer: Any = _ReflectionServicer([*service_names, V1ALPHA, V1])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    for name in (V1ALPHA, V1):
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}),)
        )
