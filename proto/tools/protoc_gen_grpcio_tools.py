"""A protoc plugin for ``buf generate`` that runs the Python generators bundled in grpcio-tools.

grpcio-tools compiles its gRPC Python generator into its own protoc rather than shipping a plugin
executable, so buf cannot call it directly. This plugin reads the CodeGeneratorRequest that buf sends on
stdin, runs grpcio-tools' protoc on the same descriptors with ``--python_out``, ``--pyi_out`` and
``--grpc_python_out``, and returns the files in a CodeGeneratorResponse on stdout.

buf's descriptors carry ``json_name`` on every field, which protoc leaves unset when it compiles the
sources itself (as ``proto/generate.sh`` does). It is cleared here so that both ways produce byte-identical
files; the protobuf runtime derives the same JSON names either way. The Open Inference Protocol's files
(package ``inference``) go to ``tuneserve/oip/`` with their import rewritten, as ``proto/generate.sh`` does.
Used by ``proto/buf.gen.yaml``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def _clear_json_names(messages: list[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in [*message.field, *message.extension]:
            field.ClearField("json_name")
        _clear_json_names(list(message.nested_type))


def _relocate(name: str, content: str) -> tuple[str, str]:
    """``inference/*`` (the Open Inference Protocol) becomes ``tuneserve/oip/*``, as in generate.sh."""
    if not name.startswith("inference/"):
        return name, content
    content = content.replace("\nfrom inference import ", "\nfrom tuneserve.oip import ")
    return "tuneserve/oip/" + name.removeprefix("inference/"), content


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    files = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
    for file in files.file:
        _clear_json_names(list(file.message_type))
        for extension in file.extension:
            extension.ClearField("json_name")
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp, "descriptors.binpb")
        descriptors.write_bytes(files.SerializeToString())
        out = Path(tmp, "out")
        out.mkdir()
        args = [
            "protoc",
            f"--descriptor_set_in={descriptors}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpcio-tools protoc failed (see its messages above)"
        else:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                name, content = _relocate(path.relative_to(out).as_posix(), path.read_text())
                response.file.add(name=name, content=content)
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
