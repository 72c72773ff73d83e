"""Domain results to ``tuneserve.v1`` messages and back: no logic beyond the mapping of names and enums."""

from __future__ import annotations

import contextlib
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from tuneserve.server.catalog import ModelInfo, VersionInfo
from tuneserve.server.dataplane import ClassifyOutput, ExtractOutput
from tuneserve.v1 import common_pb2, inference_pb2, model_pb2

TASKS = {"classification": common_pb2.TASK_CLASSIFICATION, "ner": common_pb2.TASK_TOKEN_CLASSIFICATION}
QUANTIZATIONS = {
    "int8-dynamic": common_pb2.QUANTIZATION_INT8_DYNAMIC,
    "int8-static": common_pb2.QUANTIZATION_INT8_STATIC,
    "fp16": common_pb2.QUANTIZATION_FP16,
    "none": common_pb2.QUANTIZATION_NONE,
}
_AGGREGATION_PREFIX = "AGGREGATION_STRATEGY_"


def aggregation_name(value: int) -> str:
    """The strategy's short name ("first", ...); unspecified means "first"; unknown values stay numbers."""
    if value == inference_pb2.AGGREGATION_STRATEGY_UNSPECIFIED:
        return "first"
    try:
        return str(inference_pb2.AggregationStrategy.Name(value)).removeprefix(_AGGREGATION_PREFIX).lower()
    except ValueError:
        return str(value)


def classify_response(out: ClassifyOutput) -> inference_pb2.ClassifyResponse:
    return inference_pb2.ClassifyResponse(
        model=out.model,
        version=out.version,
        results=[
            inference_pb2.ClassificationResult(
                labels=[inference_pb2.LabelScore(label=s.label, score=s.score) for s in r.labels],
                truncated=r.truncated,
            )
            for r in out.results
        ],
    )


def extract_response(out: ExtractOutput) -> inference_pb2.ExtractEntitiesResponse:
    return inference_pb2.ExtractEntitiesResponse(
        model=out.model,
        version=out.version,
        results=[
            inference_pb2.EntityResult(
                entities=[
                    inference_pb2.Entity(label=e.label, text=e.text, start=e.start, end=e.end, score=e.score)
                    for e in entities
                ]
            )
            for entities in out.results
        ],
    )


def _timestamp(iso: str) -> Timestamp:
    ts = Timestamp()
    with contextlib.suppress(ValueError):
        ts.FromDatetime(datetime.fromisoformat(iso))
    return ts


def model_version(v: VersionInfo) -> model_pb2.ModelVersion:
    m = v.manifest
    return model_pb2.ModelVersion(
        version=m.version,
        task=TASKS[m.task],
        labels=m.labels,
        multi_label=m.multi_label,
        max_length=m.max_length,
        quantization=QUANTIZATIONS.get(v.quantization, common_pb2.QUANTIZATION_UNSPECIFIED),
        metrics=v.metrics,
        created_at=_timestamp(m.created_at),
        execution_provider=v.provider,
        base_model=m.base_model,
        serving=v.serving,
    )


def model(info: ModelInfo) -> model_pb2.Model:
    return model_pb2.Model(
        name=info.name,
        task=TASKS.get(info.task, common_pb2.TASK_UNSPECIFIED),
        serving_version=info.serving_version,
        versions=[model_version(v) for v in info.versions],
    )
