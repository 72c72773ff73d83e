"""``TuneserveClient``: typed calls over the generated ``tuneserve.v1`` stubs, with deadlines, and retries
by gRPC's service config (the Go and Java clients' policy)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

Aggregation = Literal["simple", "first", "average", "max"]
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
MAX_ATTEMPTS = 5  # gRPC's cap on attempts (the first included)
FINISHED = frozenset(
    {training_pb2.JOB_STATE_SUCCEEDED, training_pb2.JOB_STATE_FAILED, training_pb2.JOB_STATE_CANCELLED}
)
_AGGREGATIONS = {
    "simple": inference_pb2.AGGREGATION_STRATEGY_SIMPLE,
    "first": inference_pb2.AGGREGATION_STRATEGY_FIRST,
    "average": inference_pb2.AGGREGATION_STRATEGY_AVERAGE,
    "max": inference_pb2.AGGREGATION_STRATEGY_MAX,
}
T = TypeVar("T")


class TuneserveError(Exception):
    """A failed call: the status ``code`` and the server's ``details`` (what was wrong, what is allowed)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class NoEarlierVersionError(TuneserveError):
    """``rollback``: the model keeps no version below its serving one."""


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """One text's labels, highest score first; ``truncated`` if the text exceeded the model's length."""

    labels: list[LabelScore]
    truncated: bool


@dataclass(frozen=True)
class Classified:
    model: str
    version: int
    results: list[Classification]


@dataclass(frozen=True)
class Entity:
    """A span of the input text: ``text == input[start:end]`` (code points, end exclusive)."""

    label: str
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Extracted:
    model: str
    version: int
    results: list[list[Entity]]


class TuneserveClient:
    """A connection to one tuneserve server. Thread-safe; use one per process and ``close()`` it (or use
    it as a context manager).

    ``target`` is ``host:port`` (or ``dns:///host:port``, balanced round robin over its addresses).
    ``tls`` uses the system's root certificates unless ``root_certificates`` (PEM bytes) are given;
    ``private_key`` and ``certificate_chain`` (PEM bytes) are for mutual TLS. ``token`` is sent as
    ``authorization: Bearer <token>``. ``timeout`` is each unary call's overall deadline in seconds,
    retries included (streams get none). Retries are gRPC's, configured by its service config as the Go
    and Java clients do: a call failing with UNAVAILABLE or RESOURCE_EXHAUSTED is tried again up to
    ``retries`` times (at most 4: gRPC caps attempts at 5), after a random pause up to the current
    backoff, which starts at ``backoff`` seconds and doubles up to ``max_backoff``; Train is retried only
    on RESOURCE_EXHAUSTED (a full queue), so a job is never submitted twice. ``wait_for_ready`` makes
    calls wait (within their deadline) for a server that is not up yet instead of failing.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        wait_for_ready: bool = False,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        config = service_config(retries, backoff, max_backoff)
        opts = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            ("grpc.enable_retries", int(retries > 0)),
            ("grpc.service_config", json.dumps(config)),
            *options,
        ]
        if tls or root_certificates is not None or certificate_chain is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self._channel = grpc.insecure_channel(target, options=opts)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)
        self._training = training_pb2_grpc.TrainingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def classify(
        self,
        model: str,
        texts: Sequence[str],
        top_k: int = 0,
        version: int = 0,
        *,
        timeout: float | None = None,
    ) -> Classified:
        """Scores of every text with a classification model (``top_k`` 0: all labels)."""
        request = inference_pb2.ClassifyRequest(model=model, version=version, texts=list(texts), top_k=top_k)
        reply = self._call(self._inference.Classify, request, timeout)
        return Classified(
            reply.model,
            reply.version,
            [
                Classification([LabelScore(s.label, s.score) for s in r.labels], r.truncated)
                for r in reply.results
            ],
        )

    def extract_entities(
        self,
        model: str,
        texts: Sequence[str],
        aggregation: Aggregation = "first",
        min_score: float = 0.0,
        version: int = 0,
        *,
        timeout: float | None = None,
    ) -> Extracted:
        """Entities of every text with a token classification model."""
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(_AGGREGATIONS)}, not {aggregation!r}")
        request = inference_pb2.ExtractEntitiesRequest(
            model=model,
            version=version,
            texts=list(texts),
            aggregation=_AGGREGATIONS[aggregation],
            min_score=min_score,
        )
        reply = self._call(self._inference.ExtractEntities, request, timeout)
        return Extracted(
            reply.model,
            reply.version,
            [[Entity(e.label, e.text, e.start, e.end, e.score) for e in r.entities] for r in reply.results],
        )

    def list_models(self, *, timeout: float | None = None) -> list[model_pb2.Model]:
        """Every model the server knows, with its versions (all pages)."""
        models: list[model_pb2.Model] = []
        token = ""
        while True:
            reply = self._call(
                self._models.ListModels, model_pb2.ListModelsRequest(page_token=token), timeout
            )
            models.extend(reply.models)
            token = reply.next_page_token
            if not token:
                return models

    def get_model(self, name: str, *, timeout: float | None = None) -> model_pb2.Model:
        return self._call(self._models.GetModel, model_pb2.GetModelRequest(name=name), timeout).model

    def promote(self, name: str, version: int, *, timeout: float | None = None) -> model_pb2.Model:
        """Makes ``version`` the serving version (loaded and warmed before it serves); admin token."""
        request = model_pb2.SetServingVersionRequest(name=name, version=version)
        return self._call(self._models.SetServingVersion, request, timeout).model

    def rollback(self, name: str, *, timeout: float | None = None) -> model_pb2.Model:
        """Serves the newest kept version below the serving one (``NoEarlierVersionError`` if none)."""
        model = self.get_model(name, timeout=timeout)
        older = [v.version for v in model.versions if v.version < model.serving_version]
        if not older:
            raise NoEarlierVersionError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"model {name!r} keeps no version older than its serving version {model.serving_version}",
            )
        return self.promote(name, max(older), timeout=timeout)

    def delete_version(self, name: str, version: int, *, timeout: float | None = None) -> None:
        """Deletes a version that is not serving (FAILED_PRECONDITION for the serving one)."""
        request = model_pb2.DeleteModelVersionRequest(name=name, version=version)
        self._call(self._models.DeleteModelVersion, request, timeout)

    def train(
        self, request: training_pb2.TrainRequest, *, timeout: float | None = None
    ) -> training_pb2.TrainingJob:
        """Submits a training job (QUEUED or RUNNING); follow it with ``watch``. Build the request with
        ``tuneserve.v1.training_pb2`` (model, task, training_data, hyperparameters, promotion_policy, ...)."""
        return self._call(self._training.Train, request, timeout).job

    def get_job(self, job_id: str, *, timeout: float | None = None) -> training_pb2.TrainingJob:
        request = training_pb2.GetTrainingJobRequest(job_id=job_id)
        return self._call(self._training.GetTrainingJob, request, timeout).job

    def list_jobs(
        self, model: str = "", state: int = 0, *, timeout: float | None = None
    ) -> list[training_pb2.TrainingJob]:
        """Jobs, newest first (all pages); of one ``model``, in one ``state`` (a JobState) if given."""
        jobs: list[training_pb2.TrainingJob] = []
        token = ""
        while True:
            request = training_pb2.ListTrainingJobsRequest(model=model, state=state, page_token=token)
            reply = self._call(self._training.ListTrainingJobs, request, timeout)
            jobs.extend(reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> training_pb2.TrainingJob:
        """Asks a queued or running job to stop; it ends CANCELLED once its trainer has stopped."""
        request = training_pb2.CancelTrainingJobRequest(job_id=job_id)
        return self._call(self._training.CancelTrainingJob, request, timeout).job

    def watch(self, job_id: str) -> Iterator[training_pb2.TrainingEvent]:
        """The events of a job (state, stage, progress, metrics) until it ends; close the iterator (or
        stop iterating) to stop watching: the job goes on."""
        request = training_pb2.WatchTrainingJobRequest(job_id=job_id)
        stream = self._training.WatchTrainingJob(
            request, metadata=self._metadata, wait_for_ready=self.wait_for_ready
        )
        try:
            for response in stream:
                yield response.event
        except grpc.RpcError as exc:
            raise TuneserveError(exc.code(), exc.details() or "") from exc
        finally:
            stream.cancel()

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health ("SERVING", "NOT_SERVING", ...) overall or for one service."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TuneserveClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        try:
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise TuneserveError(exc.code(), exc.details() or "") from exc


def service_config(retries: int, backoff: float, max_backoff: float) -> dict[str, Any]:
    """gRPC's service config, as the Go and Java clients build it: round robin, and the retry policies
    (Train, the most specific name, only on RESOURCE_EXHAUSTED)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retries <= 0:
        return config

    def policy(*codes: str) -> dict[str, Any]:
        return {
            "maxAttempts": min(retries + 1, MAX_ATTEMPTS),
            "initialBackoff": f"{backoff:.3f}s",
            "maxBackoff": f"{max(max_backoff, backoff):.3f}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": list(codes),
        }

    package = "tuneserve.v1."
    config["methodConfig"] = [
        {
            "name": [{"service": f"{package}TrainingService", "method": "Train"}],
            "retryPolicy": policy("RESOURCE_EXHAUSTED"),
        },
        {
            "name": [
                {"service": f"{package}{s}"} for s in ("InferenceService", "ModelService", "TrainingService")
            ],
            "retryPolicy": policy("UNAVAILABLE", "RESOURCE_EXHAUSTED"),
        },
    ]
    return config
