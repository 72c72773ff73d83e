"""Every Prometheus metric of the server, built on a ``CollectorRegistry`` passed in (one per server, so
tests get fresh ones), and the HTTP endpoint that exposes them on their own port.

Names are ``tuneserve_``-prefixed, in base units. Labels: ``method`` (RPC name), ``model`` (a served model's
name; requests for names the server does not serve are counted under ``model="_unknown"`` so that clients
cannot grow the label set), ``version``, ``code`` (gRPC status name), ``reason`` (why queued work was
dropped) and, on ``tuneserve_model_info`` only, ``quantization`` and ``provider``.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class Metrics:
    """The server's metrics on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "tuneserve_requests",
            "RPCs answered, by method, model and status code.",
            ["method", "model", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "tuneserve_request_duration_seconds",
            "Time to answer an RPC.",
            ["method", "model"],
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
            ["model"],
            buckets=LATENCY_BUCKETS,
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
            "from the store, on promotion or for a call naming the version.",
            ["model"],
            registry=registry,
        )
        self.load_failed = Gauge(
            "tuneserve_model_load_failed",
            "1 while the serving version recorded in the store for a model failed to load here (an older "
            "version may serve: --on-load-failure), else 0.",
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

    def observer(self, model: str) -> BatchMetrics:
        return BatchMetrics(self, model)


class BatchMetrics:
    """The batcher's observer for one model (implements ``batcher.BatchObserver``). The model's series are
    looked up once: ``labels()`` takes a lock and builds a key on every call."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.metrics = metrics
        self.model = model
        self._queue_depth = metrics.queue_depth.labels(model)
        self._batch_size = metrics.batch_size.labels(model)
        self._tokens = metrics.tokens.labels(model)
        self._inference_duration = metrics.inference_duration.labels(model)
        self._queue_wait = metrics.queue_wait.labels(model)

    def queue_depth(self, rows: int) -> None:
        self._queue_depth.set(rows)

    def batch(self, size: int, tokens: int, queue_waits: Sequence[float], seconds: float) -> None:
        self._batch_size.observe(size)
        self._tokens.inc(tokens)
        self._inference_duration.observe(seconds)
        for w in queue_waits:
            self._queue_wait.observe(w)

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
