"""Domain results to ``tuneserve.v1`` messages and back: no logic beyond the mapping of names and enums."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from tuneserve.lineage import DataLineage, Lineage
from tuneserve.server import jobstore
from tuneserve.server.catalog import ModelInfo, VersionInfo
from tuneserve.server.dataplane import ClassifyOutput, ExtractOutput
from tuneserve.server.jobs import Event
from tuneserve.v1 import common_pb2, inference_pb2, model_pb2, training_pb2

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
        lineage=lineage(m.lineage) if m.lineage is not None else None,
    )


def _data(d: DataLineage | None) -> model_pb2.DataLineage | None:
    return model_pb2.DataLineage(sha256=d.sha256, rows=d.rows) if d is not None else None


def lineage(x: Lineage) -> model_pb2.Lineage:
    search = None
    if x.search is not None:
        search = Struct()
        search.update(x.search)
    b = x.base_model
    return model_pb2.Lineage(
        base_model=model_pb2.BaseModelLineage(
            name=b.name,
            revision=b.revision or "",
            source=b.source,
            package=b.package or "",
            package_version=b.package_version or "",
        ),
        training_data=_data(x.data.get("train")),
        validation_data=_data(x.data.get("validation")),
        tuneserve_version=x.tuneserve.version or "",
        tuneserve_git_commit=x.tuneserve.git_commit or "",
        seed=x.seed,
        device=x.device,
        world_size=x.world_size,
        search=search,
    )


def model(info: ModelInfo) -> model_pb2.Model:
    return model_pb2.Model(
        name=info.name,
        task=TASKS.get(info.task, common_pb2.TASK_UNSPECIFIED),
        serving_version=info.serving_version,
        versions=[model_version(v) for v in info.versions],
        load_error=info.load_error,
    )


_JOB_STATES = {
    "queued": training_pb2.JOB_STATE_QUEUED,
    "running": training_pb2.JOB_STATE_RUNNING,
    "succeeded": training_pb2.JOB_STATE_SUCCEEDED,
    "failed": training_pb2.JOB_STATE_FAILED,
    "cancelled": training_pb2.JOB_STATE_CANCELLED,
}
JOB_STATE_NAMES = {v: k for k, v in _JOB_STATES.items()}
_STAGES = {
    name: training_pb2.TrainingStage.Value(f"TRAINING_STAGE_{name.upper()}") for name in jobstore.STAGES
}


def _epoch_timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _progress(step: int, total: int, epoch: float, loss: float) -> training_pb2.TrainingProgress:
    return training_pb2.TrainingProgress(step=step, total_steps=total, epoch=epoch, loss=loss)


def training_job(job: jobstore.JobRecord) -> training_pb2.TrainingJob:
    return training_pb2.TrainingJob(
        id=job.id,
        model=job.model,
        task=TASKS[job.task],
        base_model=job.base_model,
        version=job.version,
        state=_JOB_STATES[job.state],
        stage=_STAGES[job.stage],
        created_at=_epoch_timestamp(job.created_at),
        started_at=_epoch_timestamp(job.started_at),
        finished_at=_epoch_timestamp(job.finished_at),
        progress=_progress(job.step, job.total_steps, job.epoch, job.loss),
        primary_metric=job.primary_metric,
        new_metrics=job.new_metrics,
        baseline_metrics=job.baseline_metrics,
        baseline_version=job.baseline_version,
        promoted=job.promoted,
        promotion_reason=job.promotion_reason,
        error=job.error,
        epoch_metrics=[
            training_pb2.EpochMetrics(
                epoch=e["epoch"], step=e["step"], train_loss=e["train_loss"], metrics=e["metrics"]
            )
            for e in job.epoch_metrics
        ],
        best_epoch=job.best_epoch,
        message=job.message,
        trials=[trial(t) for t in job.trials],
        best_trial=job.best_trial,
    )


_TRIAL_STATES = {
    "running": training_pb2.TRIAL_STATE_RUNNING,
    "complete": training_pb2.TRIAL_STATE_COMPLETE,
    "pruned": training_pb2.TRIAL_STATE_PRUNED,
    "failed": training_pb2.TRIAL_STATE_FAILED,
}


def trial(record: dict[str, Any]) -> training_pb2.Trial:
    """A trial of the job store (``JobRecord.trials``) as the proto's Trial."""
    return training_pb2.Trial(
        number=record["number"],
        state=_TRIAL_STATES[record["state"]],
        hyperparameters=training_pb2.Hyperparameters(**record["params"]),
        value=record.get("value"),
        metrics={k: float(v) for k, v in (record.get("metrics") or {}).items()},
        epochs=len(record.get("history") or ()),
        seconds=float(record.get("seconds") or 0.0),
        error=record.get("error", ""),
    )


def training_event(event: Event) -> training_pb2.WatchTrainingJobResponse:
    return training_pb2.WatchTrainingJobResponse(
        event=training_pb2.TrainingEvent(
            job_id=event.job_id,
            state=_JOB_STATES[event.state],
            stage=_STAGES[event.stage],
            progress=_progress(event.step, event.total_steps, event.epoch, event.loss),
            metrics=event.metrics,
            message=event.message,
            time=_epoch_timestamp(event.time),
            trial=trial(event.trial) if event.trial is not None else None,
        )
    )
