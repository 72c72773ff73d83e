"""The Open Inference Protocol (KServe V2, ``inference.GRPCInferenceService``) on the tuneserve.v1 port.

NVIDIA's tritonclient.grpc (in a child process, ``v2client.py``) asks for health, metadata and inferences,
with raw tensors as it sends them; the answers are compared field by field with tuneserve.v1's for the same
texts. The server's own stub (in this process) sends ``contents.bytes_contents`` and reads the metadata's
properties, which tritonclient's copy of the protocol lacks.
"""

from __future__ import annotations

import json
import signal
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.oip import open_inference_grpc_pb2_grpc as pb_grpc
from tuneserve.v1 import inference_pb2, model_pb2

from . import v2client
from .live import ServerProcess, metric_value

SENTIMENT = ["What a wonderful film!", "Dull, slow and far too long.", "ok", "Not bad at all, really."]
NER = ["Angela Merkel met Emmanuel Macron in Paris.", "Siemens AG opened an office in Munich.", "nothing"]
EXPECTED = "'text' (BYTES, shape [N] or [N, 1]"


def stub(server: ServerProcess) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(server.channel)


def v1_labels(server: ServerProcess, model: str) -> list[str]:
    reply = server.models.GetModel(model_pb2.GetModelRequest(name=model), timeout=10)
    return list(next(v for v in reply.model.versions if v.serving).labels)


def v1_classify(server: ServerProcess, texts: list[str], top_k: int = 0) -> Any:
    request = inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=texts, top_k=top_k)
    return server.inference.Classify(request, timeout=30)


def v1_entities(server: ServerProcess, texts: list[str], aggregation: str = "FIRST") -> list[list[dict]]:
    strategy = inference_pb2.AggregationStrategy.Value(f"AGGREGATION_STRATEGY_{aggregation}")
    request = inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=texts, aggregation=strategy)
    reply = server.inference.ExtractEntities(request, timeout=30)
    return [
        [
            {"label": e.label, "start": e.start, "end": e.end, "score": e.score, "text": e.text}
            for e in r.entities
        ]
        for r in reply.results
    ]


def raw_strings(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def unraw_strings(raw: bytes) -> list[str]:
    out, at = [], 0
    while at < len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4 : at + 4 + size].decode())
        at += 4 + size
    return out


def test_health_and_metadata_with_tritonclient(server: ServerProcess) -> None:
    live, ready, model_ready, v1_ready, unknown_ready, meta, cls, ner, missing = v2client.run(
        server.target,
        [
            {"op": "live"},
            {"op": "ready"},
            {"op": "model_ready", "model": "tiny-sentiment"},
            {"op": "model_ready", "model": "tiny-sentiment", "version": "1"},
            {"op": "model_ready", "model": "no-such-model"},
            {"op": "server_metadata"},
            {"op": "model_metadata", "model": "tiny-sentiment"},
            {"op": "model_metadata", "model": "tiny-ner"},
            {"op": "model_metadata", "model": "no-such-model"},
        ],
    )
    assert live == {"live": True} and ready == {"ready": True}
    assert model_ready == v1_ready == {"ready": True} and unknown_ready == {"ready": False}
    assert meta["name"] == "tuneserve" and meta["version"]
    assert cls["name"] == "tiny-sentiment" and "1" in cls["versions"] and cls["platform"] == "tuneserve"
    assert cls["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
    labels = v1_labels(server, "tiny-sentiment")
    assert [(o["name"], o["datatype"], o["shape"]) for o in cls["outputs"]] == [
        ("label", "BYTES", ["-1"]),
        ("score", "FP32", ["-1"]),
        ("scores", "FP32", ["-1", str(len(labels))]),
    ]
    assert [o["name"] for o in ner["outputs"]] == ["entities"]
    assert missing["error"]["status"] == "StatusCode.NOT_FOUND"
    assert "no-such-model" in missing["error"]["message"]
    # tritonclient's copy of the protocol has no ModelMetadataResponse.properties: read them with ours.
    properties = (
        stub(server).ModelMetadata(pb.ModelMetadataRequest(name="tiny-sentiment"), timeout=10).properties
    )
    assert json.loads(properties["labels"]) == labels
    assert properties["task"] == "classification"
    properties = stub(server).ModelMetadata(pb.ModelMetadataRequest(name="tiny-ner", version="1"), timeout=10)
    assert json.loads(properties.properties["labels"]) == v1_labels(server, "tiny-ner")


def test_classification_matches_tuneserve_v1(server: ServerProcess) -> None:
    labels = v1_labels(server, "tiny-sentiment")
    full, top2 = v1_classify(server, SENTIMENT), v1_classify(server, SENTIMENT, top_k=2)
    n = len(SENTIMENT)
    plain, column, versioned, two, only_scores = v2client.run(
        server.target,
        [
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "id": "req-1"},
            {"op": "infer", "model": "tiny-sentiment", "texts": [[t] for t in SENTIMENT], "shape": [n, 1]},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "version": "1"},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "parameters": {"top_k": 2}},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "outputs": ["scores"]},
        ],
    )
    assert plain["model_name"] == "tiny-sentiment" and plain["model_version"] == "1"
    assert plain["id"] == "req-1"
    assert plain["shapes"] == {"label": [n], "score": [n], "scores": [n, len(labels)]}
    assert plain["datatypes"] == {"label": "BYTES", "score": "FP32", "scores": "FP32"}
    out = plain["outputs"]
    for i, result in enumerate(full.results):
        assert out["label"][i] == result.labels[0].label
        assert out["score"][i] == result.labels[0].score  # both FP32: equal, not close
        by_label = {s.label: s.score for s in result.labels}
        assert out["scores"][i] == [by_label[label] for label in labels]
    assert column["outputs"] == out and versioned["outputs"] == out
    assert two["shapes"]["label"] == two["shapes"]["score"] == [n, 2]
    for i, result in enumerate(top2.results):
        assert two["outputs"]["label"][i] == [s.label for s in result.labels]
        assert two["outputs"]["score"][i] == [s.score for s in result.labels]
    assert two["outputs"]["scores"] == out["scores"]
    assert list(only_scores["outputs"]) == ["scores"] and only_scores["outputs"]["scores"] == out["scores"]


def test_ner_matches_tuneserve_v1(server: ServerProcess) -> None:
    first, simple = v2client.run(
        server.target,
        [
            {"op": "infer", "model": "tiny-ner", "texts": NER},
            {"op": "infer", "model": "tiny-ner", "texts": NER, "parameters": {"aggregation": "simple"}},
        ],
    )
    assert first["shapes"] == {"entities": [len(NER)]} and first["datatypes"] == {"entities": "BYTES"}
    assert [json.loads(e) for e in first["outputs"]["entities"]] == v1_entities(server, NER)
    assert [json.loads(e) for e in simple["outputs"]["entities"]] == v1_entities(server, NER, "SIMPLE")


def test_bytes_contents_and_raw_inputs(server: ServerProcess) -> None:
    """Contents in, contents out; raw in, raw out; the same values either way."""
    texts = [t.encode() for t in SENTIMENT]
    tensor = pb.ModelInferRequest.InferInputTensor
    typed = pb.ModelInferRequest(
        model_name="tiny-sentiment",
        inputs=[
            tensor(name="text", datatype="BYTES", shape=[len(texts)], contents={"bytes_contents": texts})
        ],
    )
    raw = pb.ModelInferRequest(
        model_name="tiny-sentiment",
        inputs=[tensor(name="text", datatype="BYTES", shape=[len(texts)])],
        raw_input_contents=[raw_strings(texts)],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in ("score", "label")],
    )
    a = stub(server).ModelInfer(typed, timeout=30)
    b = stub(server).ModelInfer(raw, timeout=30)
    assert not a.raw_output_contents and [o.name for o in a.outputs] == ["label", "score", "scores"]
    assert [o.name for o in b.outputs] == ["score", "label"] and len(b.raw_output_contents) == 2
    assert not any(o.HasField("contents") for o in b.outputs)
    labels = [s.decode() for s in a.outputs[0].contents.bytes_contents]
    scores = list(a.outputs[1].contents.fp32_contents)
    assert unraw_strings(b.raw_output_contents[1]) == labels
    assert list(struct.unpack(f"<{len(texts)}f", b.raw_output_contents[0])) == scores
    v1 = v1_classify(server, SENTIMENT)
    assert labels == [r.labels[0].label for r in v1.results]
    assert scores == [r.labels[0].score for r in v1.results]
    ner = pb.ModelInferRequest(
        model_name="tiny-ner",
        inputs=[
            tensor(
                name="text",
                datatype="BYTES",
                shape=[len(NER), 1],
                contents={"bytes_contents": [t.encode() for t in NER]},
            )
        ],
    )
    entities = stub(server).ModelInfer(ner, timeout=30).outputs[0].contents.bytes_contents
    assert [json.loads(e) for e in entities] == v1_entities(server, NER)


def test_bad_tensors_and_unknown_model(server: ServerProcess) -> None:
    calls: list[dict[str, Any]] = [
        {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "name": "texts"},
        {"op": "infer", "model": "tiny-sentiment", "texts": [1.0], "datatype": "FP32"},
        {"op": "infer", "model": "tiny-sentiment", "texts": [["a", "b"]], "shape": [1, 2]},
        {"op": "infer", "model": "no-such-model", "texts": ["hi"]},
        {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "version": "99"},
        {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "outputs": ["entities"]},
        {"op": "infer", "model": "tiny-ner", "texts": ["hi"], "parameters": {"top_k": 1}},
        {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "parameters": {"top_k": "one"}},
        {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "parameters": {"top_k": -1}},
        {"op": "infer", "model": "tiny-sentiment", "texts": [" "]},
    ]
    name, datatype, shape, unknown, version, output, param, param_type, negative, blank = v2client.run(
        server.target, calls
    )
    for answer in (name, datatype, shape):
        assert answer["error"]["status"] == "StatusCode.INVALID_ARGUMENT", answer
        assert EXPECTED in answer["error"]["message"]
    assert "'texts'" in name["error"]["message"]
    assert "'FP32'" in datatype["error"]["message"]
    assert "[1, 2]" in shape["error"]["message"]
    assert unknown["error"]["status"] == version["error"]["status"] == "StatusCode.NOT_FOUND"
    assert "no-such-model" in unknown["error"]["message"]
    for answer in (output, param, param_type, negative, blank):
        assert answer["error"]["status"] == "StatusCode.INVALID_ARGUMENT", answer
    assert "label, score, scores" in output["error"]["message"]
    assert "top_k" in param["error"]["message"] and "top_k" in param_type["error"]["message"]
    # The DataPlane's own validation, word for word as tuneserve.v1 answers.
    for texts, top_k, answer in ((["hi"], -1, negative), ([" "], 0, blank)):
        with pytest.raises(grpc.RpcError) as info:
            v1_classify(server, texts, top_k)
        assert info.value.details() == answer["error"]["message"]


def test_metrics_and_reflection(server: ServerProcess) -> None:
    labels = {"method": "ModelInfer", "model": "tiny-sentiment", "code": "OK"}
    before = metric_value(server.scrape(), "tuneserve_requests_total", **labels)
    v2client.run(server.target, [{"op": "infer", "model": "tiny-sentiment", "texts": ["hi"]}])
    after = server.scrape()
    assert metric_value(after, "tuneserve_requests_total", **labels) == before + 1
    assert metric_value(after, "tuneserve_batch_size_count", model="tiny-sentiment") > 0
    services = ProtoReflectionDescriptorDatabase(server.channel).get_services()
    assert "inference.GRPCInferenceService" in services


def test_tls_and_auth_apply(model_store: Path, tmp_path: Path) -> None:
    """V2 calls go through the same TLS and bearer-token checks as tuneserve.v1's."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    cert.private_key_pem.write_to_path(tmp_path / "server.key")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(tmp_path / "server.pem", append=True)
    proc = ServerProcess(
        model_store,
        *("--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")),
        *("--auth-inference", "--intra-op-threads", "1"),
        env={"TUNESERVE_AUTH__READ_TOKENS": "v2-token"},
        credentials=grpc.ssl_channel_credentials(ca.cert_pem.bytes()),
    )
    try:
        request = pb.ModelInferRequest(
            model_name="tiny-sentiment",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])],
            raw_input_contents=[raw_strings([b"hi"])],
        )
        with pytest.raises(grpc.RpcError) as info:
            stub(proc).ModelInfer(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub(proc).ModelInfer(request, timeout=30, metadata=[("authorization", "Bearer v2-token")])
        assert reply.model_name == "tiny-sentiment"
        call = {"op": "infer", "model": "tiny-sentiment", "texts": ["hi"]}
        ca_file = str(tmp_path / "ca.pem")
        [refused] = v2client.run(proc.target, [call], ca_file=ca_file)
        assert refused["error"]["status"] == "StatusCode.UNAUTHENTICATED"
        [answer] = v2client.run(
            proc.target, [call], ca_file=ca_file, headers={"authorization": "Bearer v2-token"}
        )
        assert answer["model_name"] == "tiny-sentiment" and answer["outputs"]["label"]
    finally:
        proc.stop()


def test_drain_turns_server_ready_false(model_store: Path) -> None:
    """SIGTERM with V2 calls in flight: ServerReady and ModelReady turn false (ServerLive stays true) while
    the calls finish."""
    proc = ServerProcess(
        model_store,
        "--grace-period",
        "60",
        "--intra-op-threads",
        "1",
        "--max-batch-size",
        "8",
        "--max-queue",
        "100000",
        "--max-queue-tokens",
        "10000000",
    )
    long = ("Angela Merkel met Emmanuel Macron in Berlin to discuss the Siemens AG merger. " * 800)[:60000]
    request = pb.ModelInferRequest(
        model_name="tiny-ner",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])],
        raw_input_contents=[raw_strings([long.encode()])],
    )
    v2 = stub(proc)
    try:
        assert v2.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(v2.ModelInfer, request, timeout=120) for _ in range(4)]
            deadline = time.monotonic() + 30
            while metric_value(proc.scrape(), "tuneserve_in_flight_requests") < 4:
                assert time.monotonic() < deadline, "the calls did not start"
                time.sleep(0.01)
            proc.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while v2.ServerReady(pb.ServerReadyRequest(), timeout=5).ready:
                assert time.monotonic() < deadline, "ServerReady stayed true"
                time.sleep(0.01)
            assert not v2.ModelReady(pb.ModelReadyRequest(name="tiny-ner"), timeout=5).ready
            assert v2.ServerLive(pb.ServerLiveRequest(), timeout=5).live
            with pytest.raises(grpc.RpcError) as info:
                v2.ModelInfer(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            still_running = sum(not f.done() for f in futures)
            replies = [f.result() for f in futures]
        assert still_running > 0, "the calls finished before the drain started; make them longer"
        assert all(json.loads(unraw_strings(r.raw_output_contents[0])[0]) for r in replies)
        assert proc.stop() == 0
    finally:
        proc.stop(signal.SIGKILL)
