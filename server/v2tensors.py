"""Open Inference Protocol (KServe V2) tensor encoding: BYTES and FP32 elements to and from the wire.

A tensor's elements travel either in the typed field of ``InferTensorContents`` (``bytes_contents``,
``fp32_contents``) or as one ``raw_*_contents`` entry per tensor: FP32 as little-endian 4-byte floats, BYTES
as each element's length (4-byte little-endian unsigned) followed by its bytes, as tritonclient's
``serialize_byte_tensor`` writes them. No knowledge of tensor names or of the models here: errors are
``ValueError`` with a message for the caller to put in context.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from tuneserve.oip import open_inference_grpc_pb2 as pb

_LENGTH = struct.Struct("<I")
OutputTensor = pb.ModelInferResponse.InferOutputTensor


def unpack_bytes(raw: bytes) -> list[bytes]:
    """The elements of a raw BYTES tensor; ``ValueError`` if a length prefix runs past the end."""
    items: list[bytes] = []
    at, end = 0, len(raw)
    view = memoryview(raw)
    while at < end:
        if end - at < _LENGTH.size:
            raise ValueError(f"raw BYTES contents end inside the length prefix of element {len(items)}")
        (size,) = _LENGTH.unpack_from(raw, at)
        at += _LENGTH.size
        if size > end - at:
            raise ValueError(
                f"raw BYTES element {len(items)} claims {size} bytes but only {end - at} remain: each "
                "element is a 4-byte little-endian length, then that many bytes"
            )
        items.append(bytes(view[at : at + size]))
        at += size
    return items


def pack_bytes(items: Sequence[bytes]) -> bytes:
    """Raw BYTES contents: each element's 4-byte little-endian length, then the element."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def bytes_output(
    name: str, shape: Sequence[int], items: Sequence[bytes], raw: bool
) -> tuple[OutputTensor, bytes | None]:
    """A BYTES output tensor, and its raw contents when ``raw`` (then the tensor carries none)."""
    tensor = OutputTensor(name=name, datatype="BYTES", shape=shape)
    if raw:
        return tensor, pack_bytes(items)
    tensor.contents.bytes_contents.extend(items)
    return tensor, None


def fp32_output(name: str, values: np.ndarray, raw: bool) -> tuple[OutputTensor, bytes | None]:
    """An FP32 output tensor of ``values``' shape (row-major), and its raw contents when ``raw``."""
    array = np.ascontiguousarray(values, dtype="<f4")
    tensor = OutputTensor(name=name, datatype="FP32", shape=array.shape)
    if raw:
        return tensor, array.tobytes()
    tensor.contents.fp32_contents.extend(array.ravel().tolist())
    return tensor, None
