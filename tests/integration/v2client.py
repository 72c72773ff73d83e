"""NVIDIA's tritonclient (its gRPC client, or its HTTP/REST one), run in a child process against a live
server: JSON calls on stdin, JSON answers on stdout.

A child process because tritonclient registers its own copy of the Open Inference Protocol (package
``inference``) in protobuf's default descriptor pool, which then refuses the server's copy
(``tuneserve.oip``): the two cannot be imported by one process, and the test process imports the server's
modules (and one child serves both clients alike). ``run`` is the test side; ``main`` the child's. The HTTP
client uses Triton's binary tensor extension as it does by default, or JSON tensors for calls with
``"json": true``.

Each call is ``{"op": ..., ...}``; each answer a JSON object, or ``{"error": {"status", "message"}}``
when tritonclient raised ``InferenceServerException``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run(
    target: str,
    calls: list[dict[str, Any]],
    ca_file: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
    protocol: str = "grpc",
) -> list[dict[str, Any]]:
    """Make ``calls`` with tritonclient.grpc (or tritonclient.http: ``protocol="http"``, ``target`` the HTTP
    port's host:port) against ``target`` in a child process; their answers.

    ``ca_file``: speak TLS, trusting that CA (gRPC only); ``headers``: sent with every call.
    """
    options = json.dumps({"ca_file": ca_file, "headers": headers, "protocol": protocol})
    result = subprocess.run(
        [sys.executable, __file__, target, options],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def _value(array: Any) -> Any:
    """A numpy output as JSON: BYTES elements decoded as UTF-8 (tritonclient.http's JSON ones are str)."""
    if array.dtype == object:
        return [
            _value(a) if getattr(a, "dtype", None) is not None else a.decode() if isinstance(a, bytes) else a
            for a in array
        ]
    return array.tolist()


def _call(client: Any, call: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    op = call["op"]
    if op == "live":
        return {"live": client.is_server_live(headers=headers)}
    if op == "ready":
        return {"ready": client.is_server_ready(headers=headers)}
    if op == "model_ready":
        return {"ready": client.is_model_ready(call["model"], call.get("version", ""), headers=headers)}
    if op == "server_metadata":
        return dict(client.get_server_metadata(headers=headers, as_json=True))
    if op == "model_metadata":
        version = call.get("version", "")
        return dict(client.get_model_metadata(call["model"], version, headers=headers, as_json=True))
    if op == "infer":
        texts = call["texts"]
        shape = call.get("shape", [len(texts)])
        datatype = call.get("datatype", "BYTES")
        data = np.array(texts, dtype=object if datatype == "BYTES" else np.float32).reshape(shape)
        tensor = grpcclient.InferInput(call.get("name", "text"), shape, datatype)
        tensor.set_data_from_numpy(data)
        outputs = [grpcclient.InferRequestedOutput(n) for n in call.get("outputs", [])]
        result = client.infer(
            call["model"],
            [tensor],
            model_version=call.get("version", ""),
            outputs=outputs or None,
            request_id=call.get("id", ""),
            parameters=call.get("parameters"),
            headers=headers,
        )
        response = result.get_response()
        return {
            "model_name": response.model_name,
            "model_version": response.model_version,
            "id": response.id,
            "outputs": {o.name: _value(result.as_numpy(o.name)) for o in response.outputs},
            "shapes": {o.name: list(o.shape) for o in response.outputs},
            "datatypes": {o.name: o.datatype for o in response.outputs},
        }
    raise ValueError(f"unknown op {op!r}")


def _call_http(client: Any, call: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    import numpy as np
    import tritonclient.http as httpclient

    op = call["op"]
    if op == "live":
        return {"live": client.is_server_live(headers=headers)}
    if op == "ready":
        return {"ready": client.is_server_ready(headers=headers)}
    if op == "model_ready":
        return {"ready": client.is_model_ready(call["model"], call.get("version", ""), headers=headers)}
    if op == "server_metadata":
        return dict(client.get_server_metadata(headers=headers))
    if op == "model_metadata":
        return dict(client.get_model_metadata(call["model"], call.get("version", ""), headers=headers))
    if op == "infer":
        texts = call["texts"]
        shape = call.get("shape", [len(texts)])
        datatype = call.get("datatype", "BYTES")
        data = np.array(texts, dtype=object if datatype == "BYTES" else np.float32).reshape(shape)
        tensor = httpclient.InferInput(call.get("name", "text"), shape, datatype)
        binary = not call.get("json", False)
        tensor.set_data_from_numpy(data, binary_data=binary)
        names = call.get("outputs", [])
        if not names and not binary:
            names = {"tiny-ner": ["entities"]}.get(call["model"], ["label", "score", "scores"])
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in names]
        result = client.infer(
            call["model"],
            [tensor],
            model_version=call.get("version", ""),
            outputs=outputs or None,
            request_id=call.get("id", ""),
            parameters=call.get("parameters"),
            headers=headers,
        )
        response = result.get_response()
        return {
            "model_name": response["model_name"],
            "model_version": response["model_version"],
            "id": response.get("id", ""),
            "outputs": {o["name"]: _value(result.as_numpy(o["name"])) for o in response["outputs"]},
            "shapes": {o["name"]: list(o["shape"]) for o in response["outputs"]},
            "datatypes": {o["name"]: o["datatype"] for o in response["outputs"]},
        }
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    from tritonclient.utils import InferenceServerException

    calls = json.load(sys.stdin)
    options = json.loads(sys.argv[2])
    ca_file = options["ca_file"]
    if options["protocol"] == "http":
        import tritonclient.http as httpclient

        client, call_one = httpclient.InferenceServerClient(sys.argv[1]), _call_http
    else:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(
            sys.argv[1], ssl=ca_file is not None, root_certificates=ca_file
        )
        call_one = _call
    answers = []
    for call in calls:
        try:
            answers.append(call_one(client, call, options["headers"]))
        except InferenceServerException as exc:
            answers.append({"error": {"status": exc.status(), "message": exc.message()}})
    client.close()
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
