"""The Open Inference Protocol's tensor encoding and input checks, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.server import v2tensors
from tuneserve.server.errors import InvalidInput
from tuneserve.server.openinference import _texts, _version

TEXTS = ["hello", "", "naïve café 🙂"]


def test_raw_bytes_round_trip() -> None:
    items = [t.encode() for t in TEXTS]
    raw = v2tensors.pack_bytes(items)
    assert raw[:4] == (5).to_bytes(4, "little")
    assert v2tensors.unpack_bytes(raw) == items
    assert v2tensors.unpack_bytes(b"") == []


@pytest.mark.parametrize("raw", [b"\x05\x00\x00\x00abc", b"\x01\x00", b"\x00\x00\x00\x00\x01"])
def test_truncated_raw_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="element"):
        v2tensors.unpack_bytes(raw)


def test_outputs_raw_and_typed() -> None:
    values = np.array([[0.25, 0.75], [1.0, 0.0]])
    tensor, raw = v2tensors.fp32_output("scores", values, raw=True)
    assert list(tensor.shape) == [2, 2] and tensor.datatype == "FP32" and not tensor.HasField("contents")
    assert np.frombuffer(raw, "<f4").tolist() == [0.25, 0.75, 1.0, 0.0]
    tensor, raw = v2tensors.fp32_output("scores", values, raw=False)
    assert raw is None and list(tensor.contents.fp32_contents) == [0.25, 0.75, 1.0, 0.0]
    tensor, raw = v2tensors.bytes_output("label", [2], [b"a", b"bc"], raw=False)
    assert raw is None and list(tensor.contents.bytes_contents) == [b"a", b"bc"]


def request(
    name: str = "text", datatype: str = "BYTES", shape: list[int] | None = None, **kw: object
) -> object:
    shape = [len(TEXTS)] if shape is None else shape
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    return pb.ModelInferRequest(model_name="m", inputs=[tensor], **kw)


def test_texts_from_raw_and_typed_contents() -> None:
    items = [t.encode() for t in TEXTS]
    assert _texts(request(raw_input_contents=[v2tensors.pack_bytes(items)])) == TEXTS
    typed = request(shape=[len(TEXTS), 1])
    typed.inputs[0].contents.bytes_contents.extend(items)
    assert _texts(typed) == TEXTS


@pytest.mark.parametrize(
    ("req", "words"),
    [
        (request(name="texts"), "inputs are ['texts']"),
        (request(datatype="FP32"), "datatype 'FP32'"),
        (request(shape=[3, 2]), "shape [3, 2]"),
        (request(shape=[]), "shape []"),
        (request(shape=[4], raw_input_contents=[v2tensors.pack_bytes([b"a"] * 3)]), "holds 3 elements"),
        (request(shape=[1], raw_input_contents=[v2tensors.pack_bytes([b"\xff"])]), "not valid UTF-8"),
        (request(raw_input_contents=[b"", b""]), "2 raw_input_contents"),
    ],
)
def test_bad_inputs_name_the_expected_tensor(req: object, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        _texts(req)
    assert words in info.value.message
    assert "'text' (BYTES, shape [N] or [N, 1]" in info.value.message


def test_versions() -> None:
    assert _version("") == 0 and _version("12") == 12
    for bad in ("0", "-1", "v1", "\u0661"):
        with pytest.raises(InvalidInput):
            _version(bad)
