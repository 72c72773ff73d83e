"""``inference.GRPCInferenceService``: the Open Inference Protocol (KServe V2) beside tuneserve.v1.

Served on the same port, behind the same interceptor (auth, metrics, errors, drain) and through the same
``DataPlane`` as ``tuneserve.v1.InferenceService``: the same validation, batching, limits, errors and
answers. The tensors:

- input ``text``: BYTES, shape ``[N]`` or ``[N, 1]``, one UTF-8 string per text, in
  ``contents.bytes_contents`` or in ``raw_input_contents`` (tritonclient's default);
- classification outputs: ``label`` (BYTES ``[N]``, the best label), ``score`` (FP32 ``[N]``, its score) and
  ``scores`` (FP32 ``[N, L]``, every label's score in the order of ModelMetadata's ``labels`` property);
- NER output: ``entities`` (BYTES ``[N]``), per text a JSON array of tuneserve.v1's entity fields
  (``label``, ``start`` and ``end`` in code points, ``score``, ``text``).

Request parameters: ``top_k`` (int, classification: ``label`` and ``score`` then hold the k best labels,
shape ``[N, k]``, best first; 0 means all labels, as in tuneserve.v1), ``aggregation`` (string, NER:
``simple``, ``first`` (default), ``average`` or ``max``) and ``min_score`` (double, NER). Other parameters are
ignored. ``outputs`` (requested outputs) selects and orders the outputs; none means all. The answer comes
in ``raw_output_contents`` when the request's input came raw (as Triton answers), otherwise in each
tensor's ``contents``. ``model_version`` empty means the serving version. Scores are FP32, as in
tuneserve.v1.

ServerLive is true while the process answers; ServerReady as overall health (false while starting, on
drain, and with strict readiness while a model is down); ModelReady true only while that model (version) is
loaded and serving, and not on drain. These three answer during drain (see ``interceptors.py``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import grpc
import numpy as np

from tuneserve.oip import open_inference_grpc_pb2 as pb
from tuneserve.oip import open_inference_grpc_pb2_grpc as pb_grpc
from tuneserve.server import v2tensors
from tuneserve.server.catalog import Catalog, VersionInfo
from tuneserve.server.dataplane import TASK_NAMES, ClassifyOutput, DataPlane, ExtractOutput
from tuneserve.server.errors import InvalidInput, ModelNotFound
from tuneserve.server.registry import State

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
INPUT = "text"
EXPECTED_INPUT = f"{INPUT!r} (BYTES, shape [N] or [N, 1]: one UTF-8 string per text)"
PLATFORM = "tuneserve"
_PARAMETERS = {"classification": ("top_k",), "ner": ("aggregation", "min_score")}
Outputs: TypeAlias = dict[str, tuple[v2tensors.OutputTensor, bytes | None]]


def _version(text: str) -> int:
    """A V2 version string as a tuneserve version (0: the serving one)."""
    if not text:
        return 0
    if not text.isdigit() or not text.isascii() or int(text) == 0:
        raise InvalidInput(f"model version {text[:40]!r} is not valid: give a version number, or none")
    return int(text)


def _texts(request: pb.ModelInferRequest) -> list[str]:
    """The texts of the ``text`` input; ``InvalidInput`` naming the expected tensor otherwise."""
    names = [t.name for t in request.inputs]
    if names != [INPUT]:
        raise InvalidInput(f"inputs are {names}: expected one input tensor {EXPECTED_INPUT}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {INPUT!r} has datatype {tensor.datatype!r}: expected {EXPECTED_INPUT}")
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or shape[0] < 0 or shape[1:] not in ([], [1]):
        raise InvalidInput(f"input {INPUT!r} has shape {shape}: expected {EXPECTED_INPUT}")
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1 or tensor.HasField("contents"):
            raise InvalidInput(
                f"{len(request.raw_input_contents)} raw_input_contents for input {INPUT!r}"
                f"{' which also has contents' if tensor.HasField('contents') else ''}: send its elements "
                f"either as one raw entry or in contents.bytes_contents; expected {EXPECTED_INPUT}"
            )
        try:
            items = v2tensors.unpack_bytes(request.raw_input_contents[0])
        except ValueError as exc:
            raise InvalidInput(f"input {INPUT!r}: {exc}; expected {EXPECTED_INPUT}") from None
    else:
        items = list(tensor.contents.bytes_contents)
    if len(items) != shape[0]:
        raise InvalidInput(
            f"input {INPUT!r} has shape {shape} but holds {len(items)} elements: expected {EXPECTED_INPUT}"
        )
    texts = []
    for i, item in enumerate(items):
        try:
            texts.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input {INPUT!r} element {i} is not valid UTF-8: expected {EXPECTED_INPUT}"
            ) from None
    return texts


def _parameter(params: Any, name: str, kinds: Sequence[str], what: str) -> Any:
    """The value of request parameter ``name`` (None when absent), which must be one of ``kinds``."""
    if name not in params:
        return None
    value = params[name]
    kind = value.WhichOneof("parameter_choice")
    if kind not in kinds:
        raise InvalidInput(f"parameter {name!r} is a {kind or 'empty value'}: it must be {what}")
    return getattr(value, kind)


def _check_parameters(params: Any, model: str, task: str) -> None:
    for other, names in _PARAMETERS.items():
        for name in names:
            if other != task and name in params:
                raise InvalidInput(
                    f"parameter {name!r} applies to {TASK_NAMES[other]} models; model {model!r} is a "
                    f"{TASK_NAMES[task]} model"
                )


def _classification_outputs(out: ClassifyOutput, top_k: int | None, raw: bool) -> Outputs:
    n, labels = len(out.results), out.labels
    if top_k is None:
        best = [r.labels[:1] for r in out.results]
        shape: list[int] = [n]
    else:
        keep = top_k or len(labels)
        best = [r.labels[:keep] for r in out.results]
        shape = [n, min(keep, len(labels))]
    score = np.array([[s.score for s in ls] for ls in best]).reshape(shape)
    scores = np.array([[{s.label: s.score for s in r.labels}[lab] for lab in labels] for r in out.results])
    return {
        "label": v2tensors.bytes_output("label", shape, [s.label.encode() for ls in best for s in ls], raw),
        "score": v2tensors.fp32_output("score", score, raw),
        "scores": v2tensors.fp32_output("scores", scores.reshape(n, len(labels)), raw),
    }


def _entities_json(out: ExtractOutput) -> list[bytes]:
    """Per text, a JSON array of its entities, with tuneserve.v1's fields and FP32 scores."""
    return [
        json.dumps(
            [
                {
                    "label": e.label,
                    "start": e.start,
                    "end": e.end,
                    "score": float(np.float32(e.score)),
                    "text": e.text,
                }
                for e in entities
            ],
            ensure_ascii=False,
        ).encode()
        for entities in out.results
    ]


def _select(outputs: Outputs, requested: Iterable[str], model: str) -> list[str]:
    """The names of the outputs to answer with: ``requested`` (in order, once each), or all."""
    names = list(dict.fromkeys(requested)) or list(outputs)
    for name in names:
        if name not in outputs:
            raise InvalidInput(
                f"unknown output {name[:80]!r}: model {model!r} has outputs {', '.join(outputs)}"
            )
    return names


class OpenInferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The Open Inference Protocol's RPCs over ``DataPlane`` and ``Catalog`` (see the module docstring)."""

    def __init__(
        self,
        dataplane: DataPlane,
        catalog: Catalog,
        draining: asyncio.Event,
        strict_readiness: bool = False,
    ) -> None:
        self.dataplane = dataplane
        self.catalog = catalog
        self.registry = dataplane.registry
        self.draining = draining
        self.strict_readiness = strict_readiness

    def _ready(self) -> bool:
        if not self.registry.ready or self.draining.is_set():
            return False
        return not (self.strict_readiness and self.registry.down())

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        version = _version(request.version)
        if not self.registry.ready or self.draining.is_set():
            return pb.ModelReadyResponse(ready=False)
        serving = self.registry.serving(request.name)
        if serving is None:
            return pb.ModelReadyResponse(ready=False)
        if version in (0, serving.version):
            return pb.ModelReadyResponse(ready=serving.state is State.SERVING)
        loaded = self.registry.loaded(request.name, version)
        return pb.ModelReadyResponse(ready=loaded is not None and loaded.state is State.READY)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="tuneserve", version=importlib.metadata.version("tuneserve"))

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        version = _version(request.version)
        info = await self.catalog.get(request.name)
        want = version or info.serving_version
        chosen: VersionInfo | None = next((v for v in info.versions if v.manifest.version == want), None)
        if chosen is None and not version and info.versions:  # none serves here: describe the newest
            chosen = max(info.versions, key=lambda v: v.manifest.version)
        if chosen is None:
            kept = ", ".join(str(v.manifest.version) for v in info.versions) or "none"
            raise ModelNotFound(f"model {info.name!r} has no version {version}; kept versions: {kept}")
        m = chosen.manifest
        tensor = pb.ModelMetadataResponse.TensorMetadata
        outputs = {
            "classification": [
                tensor(name="label", datatype="BYTES", shape=[-1]),
                tensor(name="score", datatype="FP32", shape=[-1]),
                tensor(name="scores", datatype="FP32", shape=[-1, len(m.labels)]),
            ],
            "ner": [tensor(name="entities", datatype="BYTES", shape=[-1])],
        }[m.task]
        return pb.ModelMetadataResponse(
            name=info.name,
            versions=[str(v.manifest.version) for v in info.versions],
            platform=PLATFORM,
            inputs=[tensor(name=INPUT, datatype="BYTES", shape=[-1])],
            outputs=outputs,
            properties={
                "task": m.task,
                "labels": json.dumps(list(m.labels), ensure_ascii=False),
                "multi_label": json.dumps(bool(m.multi_label)),
                "max_length": str(m.max_length),
                "version": str(m.version),
            },
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        model, version = request.model_name, _version(request.model_version)
        task = await self.dataplane.task(model, version)
        texts = _texts(request)
        params = request.parameters
        _check_parameters(params, model, task)
        raw = bool(request.raw_input_contents)
        timeout = context.time_remaining()
        outputs: Outputs
        if task == "classification":
            top_k = _parameter(params, "top_k", ("int64_param", "uint64_param"), "an integer")
            # All labels are asked for (``scores`` needs them); a negative top_k is passed on to be refused.
            out: ClassifyOutput | ExtractOutput = await self.dataplane.classify(
                model, version, texts, min(top_k or 0, 0), timeout=timeout
            )
            outputs = _classification_outputs(out, top_k, raw)
        else:
            aggregation = _parameter(params, "aggregation", ("string_param",), "a string")
            min_score = _parameter(params, "min_score", ("double_param", "int64_param"), "a number")
            out = await self.dataplane.extract_entities(
                model, version, texts, aggregation or "first", float(min_score or 0.0), timeout=timeout
            )
            outputs = {"entities": v2tensors.bytes_output("entities", [len(texts)], _entities_json(out), raw)}
        names = _select(outputs, (o.name for o in request.outputs), model)
        response = pb.ModelInferResponse(model_name=out.model, model_version=str(out.version), id=request.id)
        for name in names:
            tensor, contents = outputs[name]
            response.outputs.append(tensor)
            if contents is not None:
                response.raw_output_contents.append(contents)
        return response
