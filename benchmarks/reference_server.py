"""The least a Python gRPC server can do per Classify call: the floor that ``serve.py`` compares C=1 with.

    python benchmarks/reference_server.py MODEL_ROOT MODEL_NAME

A grpc.aio server with one method and nothing else: no interceptor, validation, metrics, batching or
queue; each call is tokenized, run on a session whose intra-op threads spin (as the bare batch-1 figure's)
and post-processed on the event loop, and answered with the same response the real server would give.
It prints its port (``{"port": N}``) once ready and serves until killed. Not a server to deploy: it
blocks its event loop for every run, so calls never overlap.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import tuneserve.server  # noqa: F401  before grpc: the same gRPC listener as `tuneserve serve`

# isort: split
import grpc

from tuneserve.encoding import encode_texts
from tuneserve.inference import OnnxModel
from tuneserve.localstore import LocalModelStore
from tuneserve.server import convert
from tuneserve.server.dataplane import ClassifyOutput
from tuneserve.server.tasks import classify
from tuneserve.v1 import inference_pb2, inference_pb2_grpc


class Reference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, model_root: Path, name: str) -> None:
        version = LocalModelStore(model_root).open_version(name)
        self.manifest = m = version.manifest
        self.model = OnnxModel(version.path, m.onnx_file, m.max_length, spinning=True)

    async def Classify(self, request: inference_pb2.ClassifyRequest, context: Any) -> Any:
        rows = encode_texts(self.model.tokenizer, list(request.texts))
        m = self.manifest
        results = classify.postprocess(self.model.logits(rows), rows, m.labels, m.multi_label, request.top_k)
        return convert.classify_response(ClassifyOutput(request.model, 1, results))


async def main(model_root: Path, name: str) -> None:
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(Reference(model_root, name), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"port": port}), flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
