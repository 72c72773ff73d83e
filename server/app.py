"""Wiring of the gRPC server, and its life: start, load, serve, drain, stop.

Start-up: the port is bound and health answers NOT_SERVING at once; the serving version of every model is
then loaded and warmed up, and only then does health say SERVING (overall "" and per service). Each model
has its own health entry, the service name being the model's name: SERVING while a version of it serves.
With ``strict_readiness``, overall health, InferenceService and the Open Inference Protocol's
GRPCInferenceService (``openinference.py``, on the same port) stay NOT_SERVING while any model has no
version serving (its serving version failed to load); ModelService stays SERVING so it can be fixed. Two log
lines give the bound ports: ``{"event": "listening", "port": N, "http_port": H, "metrics_port": M, "tls": T,
"auth": A}`` (H: the Open Inference Protocol's HTTP/REST port, ``v2http.py``, 0 when off)
(T: off, tls or mtls, see ``tls.py``; A: off, privileged or all, see ``auth.py``) and, once ready,
``{"event": "serving", ...}`` with the ports.

SIGTERM (or SIGINT): health flips to NOT_SERVING, new calls get UNAVAILABLE, calls in flight get up to
``grace_period_s`` to finish, open inference streams finish the requests they read and end with
UNAVAILABLE, then the server stops and ``run`` returns 0. A second signal stops at once.

gRPC handles at most ``Settings.concurrent_rpcs`` calls at once and answers RESOURCE_EXHAUSTED beyond,
before reading the request: no call waits unseen in its backlog while the event loop is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from tuneserve import signing
from tuneserve.oip import open_inference_grpc_pb2_grpc
from tuneserve.repository import StoreError, open_store
from tuneserve.server import reflection, tls, tracing
from tuneserve.server.auth import Authenticator
from tuneserve.server.catalog import Catalog
from tuneserve.server.dataplane import DataPlane
from tuneserve.server.errors import TrainingUnavailable
from tuneserve.server.interceptors import ServerInterceptor, Traffic
from tuneserve.server.metrics import Metrics, MetricsServer
from tuneserve.server.openinference import SERVICE as OPEN_INFERENCE
from tuneserve.server.openinference import OpenInferenceServicer
from tuneserve.server.registry import ModelRegistry
from tuneserve.server.servicer import (
    DisabledTrainingServicer,
    InferenceServicer,
    ModelServicer,
    TrainingServicer,
)
from tuneserve.server.settings import ConfigError, Settings
from tuneserve.server.training import Training, unavailable_reason
from tuneserve.server.v2http import V2HTTP
from tuneserve.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

log = structlog.get_logger("tuneserve.server")

INFERENCE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
MODEL = model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
TRAINING = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
# Services that report SERVING once the models are loaded; TrainingService too when this server can train.
READY_SERVICES = ("", INFERENCE, OPEN_INFERENCE, MODEL)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _verify_key(settings: Settings) -> Any:
    """The public key versions must be signed for (``--verify-key``), or None."""
    if settings.verify_key is None:
        return None
    try:
        return signing.load_public_key(settings.verify_key)
    except signing.SigningError as exc:
        raise ConfigError(f"--verify-key: {exc}") from exc


def _check_training_signing_key(settings: Settings) -> None:
    """A bad ``--training-signing-key`` stops start-up rather than failing every job at its end."""
    if settings.training.enabled and settings.training.signing_key is not None:
        try:
            signing.load_private_key(settings.training.signing_key)
        except signing.SigningError as exc:
            raise ConfigError(f"--training-signing-key: {exc}") from exc


class App:
    """One server process: build with settings, then ``await run()``."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics(registry or CollectorRegistry())
        self.store = open_store(settings.store, verify_key=_verify_key(settings))
        _check_training_signing_key(settings)
        self.models = ModelRegistry(self.store, settings, self.metrics)
        self.traffic = Traffic()
        self.health = health.aio.HealthServicer()
        self.stopping = asyncio.Event()
        self.port = 0
        self.metrics_port = 0
        self._metrics_server: MetricsServer | None = None
        self._follower: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.models.on_change = self._sync_health
        # Token and certificate files are read now: a bad one stops start-up before anything listens.
        self.auth = Authenticator.from_settings(settings.auth)
        self._credentials = tls.server_credentials(settings.tls)
        # OTEL_* variables only (tracing.py); a provider installed before (tests) is kept.
        self._tracer_provider = None if tracing.enabled() else tracing.configure()
        if self._tracer_provider is not None:
            log.info("tracing on", exporters=tracing.exporter_names())
        self._http_ssl = tls.http_ssl_context(settings.tls) if settings.http_port else None
        interceptor = ServerInterceptor(self.metrics, self.traffic, self.models.is_known, self.auth)
        self._server = grpc.aio.server(
            interceptors=[
                *tracing.server_interceptors(),  # first: the RPC's span is current in everything below
                interceptor,
            ],
            options=[
                ("grpc.max_receive_message_length", settings.limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=settings.concurrent_rpcs,
        )
        dataplane = DataPlane(self.models, settings.limits)
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(
            InferenceServicer(dataplane, settings.max_stream_in_flight, self.traffic.drain_started),
            self._server,
        )
        catalog = Catalog(self.store, self.models)
        open_inference = OpenInferenceServicer(
            dataplane, catalog, self.traffic.drain_started, settings.strict_readiness
        )
        open_inference_grpc_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(open_inference, self._server)
        self._http: V2HTTP | None = None
        if settings.http_port:
            self._http = V2HTTP(open_inference, interceptor, settings.limits.max_message_bytes)
        self.http_port = 0
        model_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(catalog), self._server)
        self.training: Training | None = None
        reason = unavailable_reason(settings)
        if reason is None:
            try:
                self.training = Training(settings, self.store, self.models, catalog, self.metrics)
            except TrainingUnavailable as exc:  # another server runs this job store's jobs
                reason = exc.message
                log.warning("training off", reason=reason)
        else:
            log.info("training off", reason=reason)
        if self.training is not None:
            training_servicer: Any = TrainingServicer(self.training)
        else:
            training_servicer = DisabledTrainingServicer(reason or "training is off on this server")
        training_pb2_grpc.add_TrainingServiceServicer_to_server(training_servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable(self._server, [INFERENCE, OPEN_INFERENCE, MODEL, TRAINING, health.SERVICE_NAME])

    async def start(self) -> None:
        """Bind the ports and start answering (health: NOT_SERVING until ``load`` is done)."""
        started = time.perf_counter()
        self._started = started
        for service in (*READY_SERVICES, TRAINING):
            await self.health.set(service, NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            if self._credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, self._credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address} (is the port in use?): {exc}") from exc
        self._metrics_server = MetricsServer(
            self.metrics.registry, self.settings.metrics_host, self.settings.metrics_port
        )
        self.metrics_port = self._metrics_server.port
        await self._server.start()
        if self._http is not None:
            try:
                await self._http.start(self.settings.host, self.settings.http_port, self._http_ssl)
            except OSError:
                await self._server.stop(0)
                raise
            self.http_port = self.settings.http_port
        log.info(
            "listening",
            port=self.port,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
            model_root=self.store.url,
            tls=self.settings.tls.mode,
            auth="off" if self.auth is None else self.auth.mode,
        )

    async def load(self) -> None:
        """Remove dead writers' staging folders; load and warm every model's serving version; report
        SERVING."""
        try:
            for path in await asyncio.to_thread(self.store.clean):
                log.info("removed a dead writer's staging folder", path=str(path))
        except StoreError as exc:  # an object store that is down; loading says whether the cache will do
            log.warning("dead writers' leftovers not cleaned", store=self.store.url, error=str(exc))
        await self.models.load_all()
        if self.training is not None:
            await self.training.start()
            await self.health.set(TRAINING, SERVING)
        await self.health.set(MODEL, SERVING)
        await self._sync_health()
        if self.settings.store_poll_interval_s > 0:
            self._follower = asyncio.create_task(self._follow_store(self.settings.store_poll_interval_s))
        if self.settings.loaded_version_idle_s > 0:
            self._sweeper = asyncio.create_task(self._unload_idle(self.settings.loaded_version_idle_s))
        log.info(
            "serving",
            port=self.port,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
            models=self.models.names(),
            startup_s=round(time.perf_counter() - self._started, 3),
        )

    async def _sync_health(self) -> None:
        """Per-model entries; overall and InferenceService (strict readiness: not while a model is down)."""
        if not self.models.ready:
            return
        for name in self.models.names():
            serving = self.models.serving(name) is not None
            await self.health.set(name, SERVING if serving else NOT_SERVING)
            self.metrics.model_ready.labels(name).set(1 if serving else 0)
        down = self.models.down()
        ready = not (self.settings.strict_readiness and down)
        for service in ("", INFERENCE, OPEN_INFERENCE):
            await self.health.set(service, SERVING if ready else NOT_SERVING)

    async def _unload_idle(self, idle: float) -> None:
        """Unload versions loaded for calls that named them once idle (see ``loaded_version_idle_s``)."""
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.1), 30.0))
            try:
                await self.models.unload_idle()
            except Exception:
                log.exception("unloading idle versions failed")

    async def _follow_store(self, interval: float) -> None:
        """Every ``interval`` seconds, switch to serving versions set in the store by another process."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.models.follow_store()
            except Exception:  # a store hiccup (NFS, permissions) must not stop the polling
                log.exception("following the model store failed")

    async def drain(self) -> None:
        """Refuse new calls, let those in flight finish within the grace period, then stop."""
        grace = self.settings.grace_period_s
        log.info("draining", in_flight=self.traffic.in_flight, grace_period_s=grace)
        self.traffic.start_draining()
        await self.health.enter_graceful_shutdown()
        for task in (self._follower, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.training is not None:
            await self.training.stop_jobs()
        finished = await self.traffic.wait_idle(grace)
        cut = 0 if finished else self.traffic.in_flight  # counted before stop() cancels them
        await self._server.stop(grace=0.5 if finished else 0)
        if self._http is not None:
            await self._http.stop()
        if self.training is not None:
            self.training.close()
        await self.models.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self._tracer_provider is not None:
            await asyncio.to_thread(self._tracer_provider.shutdown)  # exports the spans still buffered
        log.info("stopped", in_flight_cut=cut)

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT (or ``stopping`` is set); return the exit status."""
        await self.start()
        self._install_signal_handlers()
        loading = asyncio.ensure_future(self.load())
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([loading, stop], return_when=asyncio.FIRST_COMPLETED)
        if loading.done() and loading.exception() is not None:
            stop.cancel()
            await self._server.stop(0)
            if self._http is not None:
                await self._http.stop()
            raise loading.exception()  # type: ignore[misc]
        await stop
        if not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
        await self.drain()
        return 0

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if self.stopping.is_set():
                log.warning("second signal: stopping now", signal=sig.name)
                self.traffic.stop_waiting()
                return
            log.info("signal", signal=sig.name)
            self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, sig)


async def serve(settings: Settings) -> int:
    return await App(settings).run()
