"""The Open Inference Protocol's REST bodies (JSON tensors) to and from its gRPC messages.

The HTTP front end (``v2http.py``) turns each JSON request into the ``inference`` protobuf request and hands
it to ``OpenInferenceServicer``, so both protocols share one implementation: the same validation, messages,
outputs and parameters. Tensor data in JSON is a flat or nested (row-major) array; BYTES elements are
strings (UTF-8). Errors are ``InvalidInput`` naming what was expected.

Triton's binary tensor extension, which tritonclient.http uses by default, is served too: the body is a
JSON header of ``Inference-Header-Content-Length`` bytes followed by the tensors whose ``parameters`` give
a ``binary_data_size``, in order, encoded as gRPC's ``raw_*_contents`` are (``v2tensors.py``); outputs
asked for with ``binary_data`` (or all, with the request parameter ``binary_data_output``) come back so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.server import v2tensors
from tuneserve.server.errors import InvalidInput
from tuneserve.server.openinference import EXPECTED_INPUT

BODY = "the body must be a JSON object with 'inputs': [{'name', 'datatype', 'shape', 'data'}]"


def _flat(data: Any) -> Iterator[Any]:
    """The elements of a flat or nested JSON array, in row-major order."""
    if isinstance(data, list):
        for item in data:
            yield from _flat(item)
    else:
        yield data


def _parameters(params: Any, where: str, target: Mapping[str, pb.InferParameter]) -> None:
    """Copy JSON ``params`` (an object of scalars) into the protobuf map ``target``."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidInput(f"{where} 'parameters' must be a JSON object of booleans, numbers and strings")
    for name, value in params.items():
        p = target[name]  # type: ignore[index]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        elif isinstance(value, str):
            p.string_param = value
        else:
            raise InvalidInput(f"{where} parameter {name[:80]!r} must be a boolean, a number or a string")


class _Binary:
    """The binary part of a request body, read tensor by tensor."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: Any, name: str) -> bytes:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"input {name[:80]!r}: binary_data_size must be a byte count")
        if self.at + size > len(self.data):
            raise InvalidInput(
                f"input {name[:80]!r} claims {size} binary bytes but only {len(self.data) - self.at} follow "
                "the JSON header (Inference-Header-Content-Length)"
            )
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def _input(item: Any, request: pb.ModelInferRequest, binary: _Binary) -> None:
    if not isinstance(item, dict):
        raise InvalidInput(f"each input must be a JSON object: expected {EXPECTED_INPUT}")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidInput(f"an input needs a 'name' and a 'datatype' (strings): expected {EXPECTED_INPUT}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"input {name[:80]!r} needs a 'shape' (integers): expected {EXPECTED_INPUT}")
    params = item.get("parameters") or {}
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    if isinstance(params, dict) and "binary_data_size" in params:
        request.raw_input_contents.append(binary.take(params["binary_data_size"], name))
        return
    if datatype != "BYTES":  # refused by the servicer, which names the expected tensor
        return
    if "data" not in item:
        raise InvalidInput(f"input {name[:80]!r} has no 'data': expected {EXPECTED_INPUT}")
    for i, element in enumerate(_flat(item["data"])):
        if not isinstance(element, str):
            raise InvalidInput(f"input {name[:80]!r} element {i} is not a string: expected {EXPECTED_INPUT}")
        tensor.contents.bytes_contents.append(element.encode("utf-8", "surrogatepass"))


def infer_request(
    body: Any, binary: bytes, model: str, version: str
) -> tuple[pb.ModelInferRequest, set[str] | None]:
    """The ModelInfer request for a REST inference request (``body``: its parsed JSON header; ``binary``:
    what follows it) to ``model``, and the outputs to answer in binary (None: all)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InvalidInput(f"{BODY}; expected input {EXPECTED_INPUT}")
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    if body.get("id") is not None:
        if not isinstance(body["id"], str):
            raise InvalidInput("'id' must be a string")
        request.id = body["id"]
    params = body.get("parameters")
    all_binary = isinstance(params, dict) and bool(params.get("binary_data_output"))
    if isinstance(params, dict):
        params = {k: v for k, v in params.items() if k != "binary_data_output"}
    _parameters(params, "request", request.parameters)
    rest = _Binary(binary)
    for item in body["inputs"]:
        _input(item, request, rest)
    if rest.at != len(binary):
        raise InvalidInput(f"{len(binary) - rest.at} bytes follow the tensors' binary data: none should")
    outputs = body.get("outputs") or []
    if not isinstance(outputs, list):
        raise InvalidInput("'outputs' must be a list of {'name': ...} objects")
    binary_outputs: set[str] = set()
    for out in outputs:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise InvalidInput("each requested output must be a JSON object with a 'name'")
        wants = (out.get("parameters") or {}).get("binary_data")
        if wants or (wants is None and all_binary):
            binary_outputs.add(out["name"])
        request.outputs.add(name=out["name"])
    return request, None if all_binary and not outputs else binary_outputs


def _data(tensor: pb.ModelInferResponse.InferOutputTensor, raw: bytes | None) -> list[Any]:
    """The elements of an output tensor as JSON values (from its raw contents if any)."""
    if tensor.datatype == "BYTES":
        items = tensor.contents.bytes_contents if raw is None else v2tensors.unpack_bytes(raw)
        return [b.decode("utf-8") for b in items]
    if raw is None:
        return list(tensor.contents.fp32_contents)
    return np.frombuffer(raw, dtype="<f4").tolist()


def _bytes(tensor: pb.ModelInferResponse.InferOutputTensor) -> bytes:
    """The raw encoding of an output tensor's ``contents``."""
    if tensor.datatype == "BYTES":
        return v2tensors.pack_bytes(tensor.contents.bytes_contents)
    return np.asarray(tensor.contents.fp32_contents, dtype="<f4").tobytes()


def infer_response(response: pb.ModelInferResponse, binary: set[str] | None) -> tuple[dict[str, Any], bytes]:
    """The REST body of a ModelInfer response: its JSON header, and the binary data of the outputs in
    ``binary`` (None: all), which follows it."""
    body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        body["id"] = response.id
    outputs, chunks = [], []
    raws = list(response.raw_output_contents)  # one per output when the input came raw (binary)
    for i, t in enumerate(response.outputs):
        raw = raws[i] if raws else None
        out: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if binary is None or t.name in binary:
            chunks.append(_bytes(t) if raw is None else raw)
            out["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            out["data"] = _data(t, raw)
        outputs.append(out)
    body["outputs"] = outputs
    return body, b"".join(chunks)


def _tensors(tensors: Any) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]


def model_metadata(response: pb.ModelMetadataResponse) -> dict[str, Any]:
    """The REST body of a ModelMetadata response (its ``properties`` as in gRPC)."""
    return {
        "name": response.name,
        "versions": list(response.versions),
        "platform": response.platform,
        "inputs": _tensors(response.inputs),
        "outputs": _tensors(response.outputs),
        "properties": dict(response.properties),
    }


def server_metadata(response: pb.ServerMetadataResponse) -> dict[str, Any]:
    """The REST body of a ServerMetadata response."""
    return {"name": response.name, "version": response.version, "extensions": list(response.extensions)}
