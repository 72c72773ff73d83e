"""``TuneserveClient``: typed calls over the generated ``tuneserve.v1`` stubs, with deadlines and retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.v1 import inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

Aggregation = Literal["simple", "first", "average", "max"]
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
_AGGREGATIONS = {
    "simple": inference_pb2.AGGREGATION_STRATEGY_SIMPLE,
    "first": inference_pb2.AGGREGATION_STRATEGY_FIRST,
    "average": inference_pb2.AGGREGATION_STRATEGY_AVERAGE,
    "max": inference_pb2.AGGREGATION_STRATEGY_MAX,
}
T = TypeVar("T")


class TuneserveError(Exception):
    """A failed call: the status ``code`` and the server's ``details`` (what was wrong, what is allowed)."""

    def __init__(self, code: grpc.StatusCode, details: str, attempts: int = 1) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.attempts = attempts


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

    ``target`` is ``host:port``. ``tls`` uses the system's root certificates unless ``root_certificates``
    (PEM bytes) are given. ``token`` is sent as ``authorization: Bearer <token>``. ``timeout`` is each
    call's overall deadline in seconds, retries included; ``retries`` is how many times a call failing
    with UNAVAILABLE or RESOURCE_EXHAUSTED is tried again.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), *options]
        if tls or root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self._channel = grpc.insecure_channel(target, options=opts)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)
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
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TuneserveError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        "the call's deadline passed before it could be sent",
                        attempt,
                    )
                return method(request, timeout=remaining, metadata=self._metadata)
            except grpc.RpcError as exc:
                code: grpc.StatusCode = exc.code()
                details: str = exc.details() or ""
                attempt += 1
                pause = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if code not in RETRYABLE or attempt > self.retries or time.monotonic() + pause >= deadline:
                    raise TuneserveError(code, details, attempt) from exc
                time.sleep(pause)
