"""Helpers for the Train RPC tests: requests built from the fixture files, waiting for jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc

from helpers import FIXTURES
from tuneserve import data as datasets
from tuneserve.v1 import common_pb2, training_pb2

from .live import ServerProcess

FINAL = (training_pb2.JOB_STATE_SUCCEEDED, training_pb2.JOB_STATE_FAILED, training_pb2.JOB_STATE_CANCELLED)


def sentiment(name: str, *, flip: bool = False) -> list[training_pb2.ClassificationExample]:
    """The fixture's sentiment examples; ``flip`` swaps the labels (a deliberately worse dataset)."""
    swap = {"positive": "negative", "negative": "positive"}
    return [
        training_pb2.ClassificationExample(
            text=ex.text, labels=[swap[lb] if flip else lb for lb in ex.labels]
        )
        for ex in datasets.read_classification(FIXTURES / name)
    ]


def ner_examples(name: str) -> list[training_pb2.TokenExample]:
    return [
        training_pb2.TokenExample(tokens=ex.tokens, tags=ex.tags) for ex in datasets.read_ner(FIXTURES / name)
    ]


def classification_request(
    model: str, base: Path, *, epochs: float = 6, flip: bool = False, **fields: object
) -> training_pb2.TrainRequest:
    return training_pb2.TrainRequest(
        model=model,
        task=common_pb2.TASK_CLASSIFICATION,
        base_model=str(base),
        training_data=training_pb2.Dataset(
            classification_examples=training_pb2.ClassificationExamples(
                examples=sentiment("sentiment_train.tsv", flip=flip)
            )
        ),
        validation_data=training_pb2.Dataset(
            classification_examples=training_pb2.ClassificationExamples(
                examples=sentiment("sentiment_validation.tsv")
            )
        ),
        hyperparameters=training_pb2.Hyperparameters(
            epochs=int(epochs), learning_rate=1e-3, batch_size=8, max_length=32, early_stopping_patience=0
        ),
        **fields,
    )


def wait_job(server: ServerProcess, job_id: str, timeout: float = 300) -> training_pb2.TrainingJob:
    deadline = time.monotonic() + timeout
    while True:
        job = server.training.GetTrainingJob(training_pb2.GetTrainingJobRequest(job_id=job_id)).job
        if job.state in FINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished in {timeout} s: {job}")
        time.sleep(0.3)


def wait_until(server: ServerProcess, job_id: str, check, timeout: float = 300) -> training_pb2.TrainingJob:
    deadline = time.monotonic() + timeout
    while True:
        job = server.training.GetTrainingJob(training_pb2.GetTrainingJobRequest(job_id=job_id)).job
        if check(job):
            return job
        if job.state in FINAL or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached the expected point: {job}")
        time.sleep(0.2)


def job_pids(job_id: str) -> list[int]:
    """Processes running the worker of ``job_id`` (its spec path holds the id)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"tuneserve.pipeline.job" in cmdline and job_id.encode() in cmdline:
            found.append(int(entry))
    return found


def code_of(call, *args) -> grpc.StatusCode:
    try:
        call(*args)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def leftovers(model_root: Path) -> list[Path]:
    """Staging folders and job work folders that should not outlive a job."""
    return [*model_root.glob("*/.tmp-*"), *(model_root / ".jobs" / "work").glob("*")]
