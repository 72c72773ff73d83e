"""Every Prometheus metric of the server, built on a ``CollectorRegistry`` passed in (one per server, so
tests get fresh ones), and the HTTP endpoint that exposes them on their own port.

Names are ``tuneserve_``-prefixed, in base units. Labels: ``method`` (RPC name), ``model`` (a served model's
name; requests for names the server does not serve are counted under ``model="_unknown"`` so that clients
cannot grow the label set), ``version`` (the model version that answered: only versions this process
loaded, so clients cannot grow it either; empty where no version was reached, as for a refused or invalid
call), ``code`` (gRPC status name), ``reason`` (why queued work was dropped), ``phase`` (when a load
failed) and, on ``tuneserve_model_info`` only, ``quantization`` and ``provider``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

UNKNOWN_MODEL = "_unknown"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.0,
    2.0,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class Answered(Protocol):
    version: str


# The RPC being handled in this context (set by the interceptor): the data plane notes on it which model
# version answered, for the ``version`` label of the request metrics.
CURRENT_CALL: ContextVar[Answered | None] = ContextVar("tuneserve_current_call", default=None)


def answered_by(version: int) -> None:
    """Note that ``version`` answers the current RPC (a stream's last request wins)."""
    call = CURRENT_CALL.get()
    if call is not None:
        call.version = str(version)


class Metrics:
    """The server's metrics on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "tuneserve_requests",
            "RPCs answered, by method, model, model version and status code.",
            ["method", "model", "version", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "tuneserve_request_duration_seconds",
            "Time to answer an RPC.",
            ["method", "model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tuneserve_in_flight_requests",
            "RPCs being handled now (health and reflection excluded).",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "tuneserve_queue_wait_seconds",
            "Time a row waited in the batch queue.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_duration = Histogram(
            "tuneserve_inference_duration_seconds",
            "Time of one ONNX Runtime run (one batch).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokenization_duration = Histogram(
            "tuneserve_tokenization_duration_seconds",
            "Time to tokenize one request's texts (NER: into windows).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.input_tokens = Histogram(
            "tuneserve_input_tokens",
            "Tokens of one request's texts after tokenization (NER: of all its windows).",
            ["model", "version"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "tuneserve_batch_size",
            "Rows per ONNX Runtime run.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "tuneserve_queue_depth", "Rows waiting in the batch queue.", ["model"], registry=registry
        )
        self.tokens = Counter(
            "tuneserve_tokens",
            "Tokens run through the model (padding excluded).",
            ["model"],
            registry=registry,
        )
        self.dropped = Counter(
            "tuneserve_dropped_rows",
            "Queued rows dropped before running, by reason "
            "(deadline: the call's deadline passed; cancelled: the caller went away).",
            ["model", "reason"],
            registry=registry,
        )
        self.refused = Counter(
            "tuneserve_refused_requests",
            "Requests refused at admission, before any work, by reason (queue_full: the queue's row or "
            "token bound; deadline: it could not finish within its deadline at the measured drain rate).",
            ["model", "reason"],
            registry=registry,
        )
        self.model_info = Gauge(
            "tuneserve_model_info",
            "Loaded model versions (value 1), with how they are served.",
            ["model", "version", "quantization", "provider"],
            registry=registry,
        )
        self.store_reloads = Counter(
            "tuneserve_store_reloads",
            "Serving versions changed in the model store by another process (a trainer or another "
            "replica) and loaded here, by result (loaded, failed).",
            ["model", "result"],
            registry=registry,
        )
        self.store_errors = Counter(
            "tuneserve_store_errors",
            "Model store reads that failed while following it (an object store that is down or refuses, "
            "a file system error); loaded models keep serving meanwhile.",
            ["operation"],
            registry=registry,
        )
        self.load_failures = Counter(
            "tuneserve_model_load_failures",
            "Model versions that failed to load (verification, ONNX Runtime session or warmup), at start-up, "
            "from the store, on promotion or for a call naming the version, by phase (startup, reload: the "
            "store's serving record changed, promotion: SetServingVersion, request: a call named it).",
            ["model", "phase"],
            registry=registry,
        )
        self.load_failed = Gauge(
            "tuneserve_model_load_failed",
            "1 while the serving version recorded in the store for a model failed to load here (an older "
            "version may serve: --on-load-failure), else 0.",
            ["model"],
            registry=registry,
        )
        self.model_ready = Gauge(
            "tuneserve_model_ready",
            "1 while a version of the model serves here (its health entry is SERVING), else 0.",
            ["model"],
            registry=registry,
        )
        self.training_jobs = Gauge(
            "tuneserve_training_jobs", "Training jobs queued or running.", ["state"], registry=registry
        )
        self.training_jobs_finished = Counter(
            "tuneserve_training_jobs_finished_total",
            "Training jobs that ended, by final state (succeeded, failed, cancelled) and promotion.",
            ["state", "promoted"],
            registry=registry,
        )
        self.training_job_duration = Histogram(
            "tuneserve_training_job_duration_seconds",
            "Time from a training job's start to its end.",
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800),
            registry=registry,
        )

    def observer(self, model: str, version: int) -> BatchMetrics:
        return BatchMetrics(self, model, version)


class BatchMetrics:
    """The batcher's observer for one model (implements ``batcher.BatchObserver``). The model's series are
    looked up once: ``labels()`` takes a lock and builds a key on every call."""

    def __init__(self, metrics: Metrics, model: str, version: int) -> None:
        self.metrics = metrics
        self.model = model
        self._queue_depth = metrics.queue_depth.labels(model)
        self._batch_size = metrics.batch_size.labels(model)
        self._tokens = metrics.tokens.labels(model)
        self._inference_duration = metrics.inference_duration.labels(model, str(version))
        self._tokenization = metrics.tokenization_duration.labels(model, str(version))
        self._input_tokens = metrics.input_tokens.labels(model, str(version))
        self._queue_wait = metrics.queue_wait.labels(model)

    def queue_depth(self, rows: int) -> None:
        self._queue_depth.set(rows)

    def batch(self, size: int, tokens: int, queue_waits: Sequence[float], seconds: float) -> None:
        self._batch_size.observe(size)
        self._tokens.inc(tokens)
        self._inference_duration.observe(seconds)
        for w in queue_waits:
            self._queue_wait.observe(w)

    def tokenized(self, seconds: float, tokens: int) -> None:
        """One request's tokenization (the data plane reports it)."""
        self._tokenization.observe(seconds)
        self._input_tokens.observe(tokens)

    def dropped(self, reason: str, rows: int) -> None:
        self.metrics.dropped.labels(self.model, reason).inc(rows)

    def refused(self, reason: str) -> None:
        self.metrics.refused.labels(self.model, reason).inc()


class MetricsServer:
    """``/metrics`` over HTTP on its own port, in a background thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
