"""The V2 HTTP front end's pieces without a server: JSON and binary tensors to and from the protobuf
messages, the status mapping, and the HTTP port's certificate reload."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import struct
from pathlib import Path

import grpc
import pytest
import trustme

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.server import tls, v2json, v2tensors
from tuneserve.server.errors import InvalidInput
from tuneserve.server.settings import TLSSettings
from tuneserve.server.v2http import STATUS


def body(data: object, **extra: object) -> dict:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": data}], **extra}


def test_json_request_becomes_the_grpc_request() -> None:
    request, binary = v2json.infer_request(
        body(
            [["a"], ["é"]], id="x", parameters={"top_k": 2, "aggregation": "max", "min_score": 0.5, "b": True}
        ),
        b"",
        "m",
        "3",
    )
    assert (request.model_name, request.model_version, request.id) == ("m", "3", "x")
    assert list(request.inputs[0].contents.bytes_contents) == [b"a", "é".encode()]
    p = request.parameters
    assert p["top_k"].int64_param == 2 and p["aggregation"].string_param == "max"
    assert p["min_score"].double_param == 0.5 and p["b"].bool_param is True
    assert binary == set() and not request.raw_input_contents


def test_binary_extension_both_ways() -> None:
    raw = v2tensors.pack_bytes([b"hi", b"there"])
    header = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}
        ],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "score"}],
    }
    request, binary = v2json.infer_request(header, raw, "m", "")
    assert list(request.raw_input_contents) == [raw] and binary == {"label"}
    _, everything = v2json.infer_request(
        {**header, "outputs": [], "parameters": {"binary_data_output": True}}, raw, "m", ""
    )
    assert everything is None
    response = pb.ModelInferResponse(model_name="m", model_version="1")
    response.outputs.add(name="label", datatype="BYTES", shape=[2])
    response.outputs.add(name="score", datatype="FP32", shape=[2])
    response.raw_output_contents.extend(
        [v2tensors.pack_bytes([b"pos", b"neg"]), struct.pack("<2f", 0.5, 0.25)]
    )
    head, data = v2json.infer_response(response, {"label"})
    assert head["outputs"][0] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "parameters": {"binary_data_size": len(data)},
    }
    assert head["outputs"][1]["data"] == [0.5, 0.25] and v2tensors.unpack_bytes(data) == [b"pos", b"neg"]


BINARY_INPUT = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}


@pytest.mark.parametrize(
    ("payload", "binary", "message"),
    [
        ([], b"", "'inputs'"),
        ({"inputs": "text"}, b"", "'inputs'"),
        (body(["a", 1]), b"", "element 1 is not a string"),
        (body(["a", "b"], parameters={"top_k": [1]}), b"", "parameter 'top_k'"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": ["2"], "data": []}]}, b"", "'shape'"),
        ({"inputs": [BINARY_INPUT]}, b"abc", "claims 9 binary bytes"),
        (body(["a", "b"]), b"extra", "5 bytes follow"),
        (body(["a", "b"], outputs=[{"parameters": {}}]), b"", "'name'"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_was_expected(payload: object, binary: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        v2json.infer_request(payload, binary, "m", "")
    assert message in info.value.message


def test_metadata_bodies_keep_integer_shapes() -> None:
    meta = pb.ModelMetadataResponse(
        name="m", versions=["1"], platform="tuneserve", properties={"task": "ner"}
    )
    meta.inputs.add(name="text", datatype="BYTES", shape=[-1])
    assert v2json.model_metadata(meta) == {
        "name": "m",
        "versions": ["1"],
        "platform": "tuneserve",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [],
        "properties": {"task": "ner"},
    }
    assert json.dumps(v2json.server_metadata(pb.ServerMetadataResponse(name="t", version="1")))


def test_statuses_map_to_the_specs_http_codes() -> None:
    assert STATUS[grpc.StatusCode.INVALID_ARGUMENT] == 400
    assert STATUS[grpc.StatusCode.UNAUTHENTICATED] == 401
    assert STATUS[grpc.StatusCode.PERMISSION_DENIED] == 403
    assert STATUS[grpc.StatusCode.NOT_FOUND] == 404
    assert STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED] == 429
    assert STATUS[grpc.StatusCode.UNAVAILABLE] == 503


def _write(cert: trustme.LeafCert, folder: Path) -> None:
    cert.private_key_pem.write_to_path(folder / "server.key")
    (folder / "server.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))


def test_http_certificate_is_reloaded_when_its_files_change(tmp_path: Path) -> None:
    ca = trustme.CA()
    first, second = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    _write(first, tmp_path)
    context = tls.http_ssl_context(
        TLSSettings(cert_file=tmp_path / "server.pem", key_file=tmp_path / "server.key")
    )
    assert context is not None
    client = ssl.create_default_context()
    ca.configure_trust(client)

    async def peer_certificate() -> bytes:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        server.close()
        return der

    before = asyncio.run(peer_certificate())
    assert before == ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
    _write(second, tmp_path)
    os.utime(tmp_path / "server.pem", ns=(1, 1))  # a different stat, whatever the clock's resolution
    after = asyncio.run(peer_certificate())
    assert after == ssl.PEM_cert_to_DER_cert(second.cert_chain_pems[0].bytes().decode())
    (tmp_path / "server.key").write_text("not a key")
    os.utime(tmp_path / "server.key", ns=(2, 2))
    assert asyncio.run(peer_certificate()) == after  # unusable files: the previous certificate stays
