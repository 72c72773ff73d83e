"""The Open Inference Protocol (KServe V2) over HTTP/REST (``--http-port``), on the shared live server.

NVIDIA's tritonclient.http (in a child process, ``v2client.py``, with binary tensors as it sends them by
default, and with JSON tensors) asks for health, metadata and inferences; the answers are compared field by
field with tuneserve.v1's for the same texts.
Plain JSON over urllib, as ``curl`` sends it, covers errors, drain, TLS and tokens.
"""

from __future__ import annotations

import json
import signal
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trustme

from helpers import free_port

from . import v2client
from .live import ServerProcess, metric_value
from .test_serve_openinference import EXPECTED, NER, SENTIMENT, v1_classify, v1_entities, v1_labels


def http(
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    raw: bytes | None = None,
    method: str | None = None,
) -> tuple[int, Any]:
    """One call: (HTTP status, parsed JSON body)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def infer_body(texts: list[str], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}], **extra}


def test_health_and_metadata_with_tritonclient_http(server: ServerProcess) -> None:
    live, ready, model_ready, v1_ready, unknown_ready, meta, cls, ner, missing = v2client.run(
        f"127.0.0.1:{server.http_port}",
        [
            {"op": "live"},
            {"op": "ready"},
            {"op": "model_ready", "model": "tiny-sentiment"},
            {"op": "model_ready", "model": "tiny-sentiment", "version": "1"},
            {"op": "model_ready", "model": "no-such-model"},
            {"op": "server_metadata"},
            {"op": "model_metadata", "model": "tiny-sentiment"},
            {"op": "model_metadata", "model": "tiny-ner", "version": "1"},
            {"op": "model_metadata", "model": "no-such-model"},
        ],
        protocol="http",
    )
    assert live == {"live": True} and ready == {"ready": True}
    assert model_ready == v1_ready == {"ready": True} and unknown_ready == {"ready": False}
    assert meta["name"] == "tuneserve" and meta["version"]
    assert cls["name"] == "tiny-sentiment" and "1" in cls["versions"] and cls["platform"] == "tuneserve"
    assert cls["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    labels = v1_labels(server, "tiny-sentiment")
    assert cls["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, len(labels)]},
    ]
    assert json.loads(cls["properties"]["labels"]) == labels and cls["properties"]["task"] == "classification"
    assert [o["name"] for o in ner["outputs"]] == ["entities"]
    assert json.loads(ner["properties"]["labels"]) == v1_labels(server, "tiny-ner")
    assert missing["error"]["status"] == "404" and "no-such-model" in missing["error"]["message"]


def test_classification_over_http_matches_tuneserve_v1(server: ServerProcess) -> None:
    labels = v1_labels(server, "tiny-sentiment")
    full, top2 = v1_classify(server, SENTIMENT), v1_classify(server, SENTIMENT, top_k=2)
    n = len(SENTIMENT)
    plain, column, versioned, two, only_scores = v2client.run(
        f"127.0.0.1:{server.http_port}",
        [
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "id": "req-1"},
            {"op": "infer", "model": "tiny-sentiment", "texts": [[t] for t in SENTIMENT], "shape": [n, 1]},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "version": "1", "json": True},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "parameters": {"top_k": 2}},
            {"op": "infer", "model": "tiny-sentiment", "texts": SENTIMENT, "outputs": ["scores"]},
        ],
        protocol="http",
    )
    assert plain["model_name"] == "tiny-sentiment" and plain["model_version"] == "1"
    assert plain["id"] == "req-1"
    assert plain["shapes"] == {"label": [n], "score": [n], "scores": [n, len(labels)]}
    assert plain["datatypes"] == {"label": "BYTES", "score": "FP32", "scores": "FP32"}
    out = plain["outputs"]
    for i, result in enumerate(full.results):
        assert out["label"][i] == result.labels[0].label
        assert out["score"][i] == result.labels[0].score  # FP32 through JSON: equal, not close
        by_label = {s.label: s.score for s in result.labels}
        assert out["scores"][i] == [by_label[label] for label in labels]
    assert column["outputs"] == out and versioned["outputs"] == out  # binary and JSON tensors alike
    assert two["shapes"]["label"] == two["shapes"]["score"] == [n, 2]
    for i, result in enumerate(top2.results):
        assert two["outputs"]["label"][i] == [s.label for s in result.labels]
        assert two["outputs"]["score"][i] == [s.score for s in result.labels]
    assert list(only_scores["outputs"]) == ["scores"] and only_scores["outputs"]["scores"] == out["scores"]


def test_ner_over_http_matches_tuneserve_v1(server: ServerProcess) -> None:
    first, simple = v2client.run(
        f"127.0.0.1:{server.http_port}",
        [
            {"op": "infer", "model": "tiny-ner", "texts": NER},
            {
                "op": "infer",
                "model": "tiny-ner",
                "texts": NER,
                "parameters": {"aggregation": "simple"},
                "json": 1,
            },
        ],
        protocol="http",
    )
    assert first["shapes"] == {"entities": [len(NER)]} and first["datatypes"] == {"entities": "BYTES"}
    assert [json.loads(e) for e in first["outputs"]["entities"]] == v1_entities(server, NER)
    assert [json.loads(e) for e in simple["outputs"]["entities"]] == v1_entities(server, NER, "SIMPLE")


def test_plain_json_as_curl_sends_it(server: ServerProcess) -> None:
    base = server.http_url
    assert http(f"{base}/v2/health/live") == (200, {"live": True})
    assert http(f"{base}/v2/health/ready") == (200, {"ready": True})
    assert http(f"{base}/v2/models/tiny-ner/versions/1/ready") == (200, {"name": "tiny-ner", "ready": True})
    status, answer = http(f"{base}/v2/models/tiny-sentiment/infer", infer_body(["ok"], id="a"))
    assert status == 200 and answer["id"] == "a" and answer["model_name"] == "tiny-sentiment"
    assert [o["name"] for o in answer["outputs"]] == ["label", "score", "scores"]
    assert answer["outputs"][0]["data"] == [v1_classify(server, ["ok"]).results[0].labels[0].label]
    nested = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": [["ok"], ["no"]]}]}
    status, answer = http(f"{base}/v2/models/tiny-sentiment/versions/1/infer", nested)
    assert status == 200 and answer["outputs"][0]["shape"] == [2]


def test_bad_requests_name_the_expected_tensor(server: ServerProcess) -> None:
    url = f"{server.http_url}/v2/models/tiny-sentiment/infer"
    for body, detail in (
        ({"inputs": [{"name": "texts", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}, "'texts'"),
        ({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, "'FP32'"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}, "[1, 2]"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]}, "1 elements"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [7]}]}, "not a string"),
        ({"texts": ["hi"]}, "'inputs'"),
    ):
        status, answer = http(url, body)
        assert status == 400 and EXPECTED in answer["error"] and detail in answer["error"], answer
    binary = infer_body(["hi"])
    binary["inputs"][0]["parameters"] = {"binary_data_size": 600}
    del binary["inputs"][0]["data"]
    status, answer = http(url, binary)
    assert status == 400 and "claims 600 binary bytes" in answer["error"]
    status, answer = http(url, raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = http(url, infer_body(["hi"], parameters={"top_k": "one"}))
    assert status == 400 and "top_k" in answer["error"]
    status, answer = http(url, infer_body(["hi"], outputs=[{"name": "entities"}]))
    assert status == 400 and "label, score, scores" in answer["error"]
    [tritonclient] = v2client.run(
        f"127.0.0.1:{server.http_port}",
        [{"op": "infer", "model": "tiny-sentiment", "texts": ["hi"], "name": "texts"}],
        protocol="http",
    )
    assert tritonclient["error"]["status"] == "400" and EXPECTED in tritonclient["error"]["message"]


def test_unknown_models_and_paths(server: ServerProcess) -> None:
    base = server.http_url
    status, answer = http(f"{base}/v2/models/no-such-model/infer", infer_body(["hi"]))
    assert status == 404 and "no-such-model" in answer["error"]
    assert http(f"{base}/v2/models/no-such-model")[0] == 404
    assert http(f"{base}/v2/models/tiny-sentiment/versions/99/infer", infer_body(["hi"]))[0] == 404
    assert http(f"{base}/v2/models/no-such-model/ready") == (400, {"name": "no-such-model", "ready": False})
    status, answer = http(f"{base}/v2/models/tiny-sentiment/versions/x/ready")
    assert status == 400 and "version" in answer["error"]
    status, answer = http(f"{base}/v3/anything")
    assert status == 404 and "error" in answer
    status, answer = http(f"{base}/v2/models/tiny-sentiment/infer", method="GET")
    assert status == 405 and "error" in answer


def test_http_calls_are_counted_as_grpc_calls(server: ServerProcess) -> None:
    ok = {"method": "ModelInfer", "model": "tiny-sentiment", "code": "OK"}
    missing = {"method": "ModelInfer", "model": "_unknown", "code": "NOT_FOUND"}
    before = server.scrape()
    http(f"{server.http_url}/v2/models/tiny-sentiment/infer", infer_body(["hi"]))
    http(f"{server.http_url}/v2/models/someone-else/infer", infer_body(["hi"]))
    after = server.scrape()
    for labels in (ok, missing):
        assert metric_value(after, "tuneserve_requests_total", **labels) == (
            metric_value(before, "tuneserve_requests_total", **labels) + 1
        )
    assert metric_value(
        after, "tuneserve_request_duration_seconds_count", method="ModelInfer", model="tiny-sentiment"
    )


def test_tls_and_tokens_apply_over_http(model_store: Path, tmp_path: Path) -> None:
    """The same certificate, tokens and message limit as the gRPC port: no token or an unknown one is 401, a
    body over --max-message-bytes 413."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(tmp_path / "server.key")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(tmp_path / "server.pem", append=True)
    port = free_port()
    proc = ServerProcess(
        model_store,
        *("--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")),
        *("--auth-inference", "--intra-op-threads", "1", "--http-port", str(port)),
        *("--max-message-bytes", "65536"),
        env={"TUNESERVE_AUTH__READ_TOKENS": "v2-token"},
    )
    try:
        assert proc.http_port == port  # the "listening" line gives it
        context = ssl.create_default_context()
        ca.configure_trust(context)
        url = f"https://127.0.0.1:{port}/v2/models/tiny-sentiment/infer"
        status, answer = http(url, infer_body(["hi"]), context=context)
        assert status == 401 and "Bearer" in answer["error"]
        status, _ = http(url, infer_body(["hi"]), {"Authorization": "Bearer nope"}, context)
        assert status == 401
        status, answer = http(url, infer_body(["hi"]), {"Authorization": "Bearer v2-token"}, context)
        assert status == 200 and answer["model_name"] == "tiny-sentiment"
        status, answer = http(url, infer_body(["x" * 70000]), {"Authorization": "Bearer v2-token"}, context)
        assert status == 413 and "--max-message-bytes" in answer["error"]
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plaintext on the TLS port
            http(f"http://127.0.0.1:{port}/v2/health/live")
    finally:
        proc.stop()


def test_drain_turns_ready_false_and_refuses_new_calls(model_store: Path) -> None:
    port = free_port()
    proc = ServerProcess(
        model_store,
        *("--grace-period", "60", "--intra-op-threads", "1", "--max-batch-size", "8"),
        *("--max-queue", "100000", "--max-queue-tokens", "10000000", "--http-port", str(port)),
    )
    base = f"http://127.0.0.1:{port}"
    long = ("Angela Merkel met Emmanuel Macron in Berlin to discuss the Siemens AG merger. " * 800)[:60000]
    try:
        assert http(f"{base}/v2/health/ready")[0] == 200
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(http, f"{base}/v2/models/tiny-ner/infer", infer_body([long])) for _ in range(4)
            ]
            deadline = time.monotonic() + 30
            while metric_value(proc.scrape(), "tuneserve_in_flight_requests") < 4:
                assert time.monotonic() < deadline, "the calls did not start"
                time.sleep(0.01)
            proc.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while http(f"{base}/v2/health/ready")[0] == 200:
                assert time.monotonic() < deadline, "ready stayed true"
                time.sleep(0.01)
            assert http(f"{base}/v2/health/ready") == (400, {"ready": False})
            assert http(f"{base}/v2/models/tiny-ner/ready")[0] == 400
            assert http(f"{base}/v2/health/live") == (200, {"live": True})
            status, answer = http(f"{base}/v2/models/tiny-ner/infer", infer_body(["hi"]))
            assert status == 503 and "shutting down" in answer["error"]
            still_running = sum(not f.done() for f in futures)
            replies = [f.result() for f in futures]
        assert still_running > 0, "the calls finished before the drain started; make them longer"
        assert all(status == 200 and json.loads(a["outputs"][0]["data"][0]) for status, a in replies)
        assert proc.stop() == 0
    finally:
        proc.stop(signal.SIGKILL)
