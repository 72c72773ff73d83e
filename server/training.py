"""The Train RPC's domain: check a request, turn it into a queued job, and keep the versions in bounds.

``Training`` owns the job store (once it holds the store's ``RunnerLock``) and the runner; the registry
does promotion, the catalog retention.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import sqlite3

import structlog

from tuneserve.repository import ModelStore
from tuneserve.server import trainrequest
from tuneserve.server.catalog import Catalog
from tuneserve.server.errors import StorageFull, TrainingUnavailable
from tuneserve.server.executors import make_executor
from tuneserve.server.jobs import JobRunner
from tuneserve.server.jobstore import JobRecord, JobStore, JobStoreBusy, RunnerLock
from tuneserve.server.metrics import Metrics
from tuneserve.server.registry import ModelRegistry
from tuneserve.server.settings import Settings
from tuneserve.v1 import training_pb2

JOBS_DB = "jobs.sqlite"
_FULL = (errno.ENOSPC, errno.EDQUOT)

log = structlog.get_logger("tuneserve.server.training")


def unavailable_reason(settings: Settings) -> str | None:
    """Why this server cannot train, or None."""
    if not settings.training.enabled:
        return "training is disabled on this server (--no-training); use a server started with training on"
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("optimum") is None:
        return (
            "this server was installed without the train extra (torch, transformers, optimum): "
            "install tuneserve[train] or use the training image"
        )
    return None


class Training:
    """The Train RPCs' domain. Constructing it takes the job store's lock: ``TrainingUnavailable`` (with
    the reason, for the log and the RPCs) if another live server runs that store's jobs."""

    def __init__(
        self,
        settings: Settings,
        store: ModelStore,
        registry: ModelRegistry,
        catalog: Catalog,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        executor = make_executor(settings.training, settings.store)  # ConfigError before the lock is taken
        root = settings.jobs_dir
        try:
            self.lock = RunnerLock.acquire(root)
        except JobStoreBusy as exc:
            raise TrainingUnavailable(
                f"training is off on this server: {exc}, which runs its jobs; this server serves but does "
                "not train. Send Train to that server, or stop it and restart this one "
                "(start a serving-only server with --no-training to silence this)"
            ) from exc
        try:
            self.jobs = JobStore(root / JOBS_DB)
        except BaseException:
            self.lock.release()
            raise
        self.catalog = catalog
        self.runner = JobRunner(
            settings.training,
            store,
            self.jobs,
            root / "work",
            registry.promote,
            self._after_success,
            metrics,
            executor,
        )

    async def start(self) -> None:
        await self.runner.start()

    async def stop_jobs(self) -> None:
        """Fail the running jobs and end the watch streams (the server is draining)."""
        await self.runner.close()

    def close(self) -> None:
        self.jobs.close()
        self.lock.release()

    async def train(self, request: training_pb2.TrainRequest) -> JobRecord:
        """Validate and queue; INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS or RESOURCE_EXHAUSTED (a full
        queue, or a full jobs disk: logged with its traceback) at once."""
        if request.model:
            await self.runner.check_admission(request.model)
        job_id = self.runner.new_job_id()
        work = self.runner.work_dir(job_id)
        try:
            job = await asyncio.to_thread(
                trainrequest.prepare, request, self.settings, self.store, job_id, work
            )
            return await self.runner.submit(job)
        except (OSError, sqlite3.Error) as exc:
            if not _disk_full(exc):
                raise
            folder = self.settings.jobs_dir
            log.error("train refused: no space for the job", jobs_dir=str(folder), exc_info=exc)
            raise StorageFull(
                f"the server has no space left for the job's data in its jobs folder ({exc}); nothing "
                "was queued: retry once the operator has freed space"
            ) from exc

    async def _after_success(self, name: str, version: int) -> None:
        await self.catalog.retain(name, self.settings.training.keep_versions, protect=version)


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the quota) is full: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
