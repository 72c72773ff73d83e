"""``JobRunner``: the training jobs of this server — queue, worker processes, events, cancel, recovery.

Jobs wait in creation order for one of ``max_running`` slots. Each runs ``tuneserve.pipeline.job`` through
an executor (``tuneserve.server.executors``: a local process, or a Kubernetes Job), which hands the worker's
JSON events to the runner; the runner folds them into the job's record (saved in the SQLite job store) and
hands them to watchers. When the
job has registered a new version and its gate allows, the runner promotes it through the registry (load,
warm, switch). A job that fails or is cancelled leaves nothing behind: its work folder and its staging
folder in the model store are removed, and the serving version is untouched.

On start-up, jobs that were running when the server stopped are marked FAILED (their processes killed,
their files removed), unless the executor can follow them again (a Kubernetes Job still there); queued
jobs stay queued and run. A runner exists only in the process that holds the
job store's ``RunnerLock`` (see ``Training``), so the jobs it finds running belong to a server that is
dead: it never kills a live server's job.

Every change of a job's state is a compare-and-set in the job store (``JobStore.transition``): the
scheduler starts a job only if it is still queued, a cancel of a queued job applies only if it has not
started, and a job ends (and is counted in ``tuneserve_training_jobs_finished_total``) exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from tuneserve.repository import ModelStore
from tuneserve.server.errors import InvalidInput, JobConflict, ModelNotFound, ModelNotReady, Overloaded
from tuneserve.server.executors import Ended, Executor
from tuneserve.server.executors.local import LocalExecutor
from tuneserve.server.jobstore import FINAL_STATES, STAGES, JobRecord, JobStore
from tuneserve.server.metrics import Metrics
from tuneserve.server.settings import TrainingSettings

log = structlog.get_logger("tuneserve.server.jobs")

CANCELLED_EXIT = 3  # tuneserve.pipeline.job.CANCELLED_EXIT (not imported: that module is the worker's)


@dataclass
class Event:
    """What watchers receive: a snapshot of the job when something changed."""

    job_id: str
    state: str
    stage: str
    step: int
    total_steps: int
    epoch: float
    loss: float
    metrics: dict[str, float]
    message: str
    time: float
    progress_only: bool = False
    trial: dict[str, Any] | None = None  # during a search: the trial the event is about

    @classmethod
    def of(
        cls,
        job: JobRecord,
        message: str = "",
        progress_only: bool = False,
        trial: dict[str, Any] | None = None,
    ) -> Event:
        """A snapshot of ``job``; a progress-only event carries only its own message (usually none), so
        that a watcher sees each message once. During a search, the event carries ``trial`` (else the
        running trial)."""
        if trial is None and job.trials and job.trials[-1]["state"] == "running":
            trial = job.trials[-1]
        return cls(
            job.id,
            job.state,
            job.stage,
            job.step,
            job.total_steps,
            job.epoch,
            job.loss,
            dict(job.new_metrics or job.metrics),
            message if progress_only else message or job.message,
            time.time(),
            progress_only,
            dict(trial) if trial is not None else None,
        )


@dataclass
class _Live:
    """Events of a job since this server started it, and a condition to wake its watchers."""

    events: list[Event] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class JobRunner:
    def __init__(
        self,
        settings: TrainingSettings,
        store: ModelStore,
        jobs: JobStore,
        work_root: Path,
        promote: Callable[[str, int], Awaitable[Any]],
        after_success: Callable[[str, int], Awaitable[None]],
        metrics: Metrics,
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor or LocalExecutor(settings)
        self.store = store
        self.jobs = jobs
        self.work_root = work_root
        self._promote = promote
        self._after_success = after_success
        self.metrics = metrics
        self._queue: list[str] = []
        self._running: set[str] = set()
        self._active: dict[str, JobRecord] = {}  # the one record object of each running job
        self._submit_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: dict[str, _Live] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._closing = False
        self._cancel_wanted: set[str] = set()  # cancels of jobs started but not yet in _active

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Recover from the last run (its owner is dead: this process holds the store's lock), then start
        taking jobs from the queue."""
        attached: list[JobRecord] = []
        for job in await asyncio.to_thread(self.jobs.unfinished):
            if job.state == "running":
                if await self.executor.recover(job):
                    attached.append(job)
                elif job.version:
                    job.promotion_reason = (
                        f"{job.promotion_reason}; the server stopped before promotion: promote it "
                        "with SetServingVersion"
                    ).lstrip("; ")
                    await self._finish(
                        job, "succeeded", "the server stopped after the version was registered"
                    )
                else:
                    job.error = (
                        f"the server stopped while the job was running (stage {job.stage}); "
                        "nothing was registered: submit the job again"
                    )
                    await self._finish(job, "failed", job.error)
            else:
                self._queue.append(job.id)
        for job in attached:
            log.info("job followed again", job=job.id, model=job.model, where=self.executor.describe(job))
            self._start_task(job.id, job)
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule())
        self._wake.set()

    async def close(self) -> None:
        """Stop running jobs (they fail: the server is going away); queued jobs stay queued."""
        self._closing = True
        if self._scheduler is not None:
            self._scheduler.cancel()
        if self.executor.survives_restart:  # the jobs go on; the next start follows them again
            for task in list(self._tasks):
                task.cancel()
        for job_id in list(self._running):
            job = self._active.get(job_id)
            if self.executor.survives_restart:
                continue
            if job is not None and STAGES.index(job.stage) < STAGES.index("promoting"):
                job.error = "the server shut down while the job was running; submit it again"
                job.cancel_requested = True
                await asyncio.to_thread(self.jobs.save, job)
                await self.executor.stop(job)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.cancel_grace_s + 5)
        # End the watch streams after the jobs ended, so that their watchers see the final state; the
        # watchers of jobs still unfinished are told UNAVAILABLE and the job's fate (``watch``).
        for live in list(self._live.values()):
            async with live.changed:
                live.changed.notify_all()

    # ------------------------------------------------------------------ RPCs

    def new_job_id(self) -> str:
        return uuid.uuid4().hex[:16]

    def work_dir(self, job_id: str) -> Path:
        return self.work_root / job_id

    async def submit(self, job: JobRecord) -> JobRecord:
        """Queue a prepared job (see ``trainrequest.prepare``)."""
        try:
            async with self._submit_lock:
                await self.check_admission(job.model)
                job.spec["threads"] = self._threads()
                await asyncio.to_thread(self.jobs.add, job)
                self._queue.append(job.id)
        except BaseException:
            shutil.rmtree(job.work_dir, ignore_errors=True)
            raise
        self._count()
        log.info("job queued", job=job.id, model=job.model, task=job.task)
        self._wake.set()
        return job

    async def check_admission(self, model: str) -> None:
        """ALREADY_EXISTS if the model has a job queued or running; RESOURCE_EXHAUSTED if the queue is
        full."""
        for other in await asyncio.to_thread(self.jobs.unfinished):
            if other.model == model:
                raise JobConflict(
                    f"job {other.id} for model {model!r} is already {other.state}; wait for it "
                    "(WatchTrainingJob) or cancel it (CancelTrainingJob)"
                )
        free = max(0, self.settings.max_running - len(self._running))
        if len(self._queue) >= self.settings.max_queued + free:
            raise Overloaded(f"the training queue is full ({len(self._queue)} jobs waiting); retry later")

    async def get(self, job_id: str) -> JobRecord:
        if job_id in self._active:
            return self._active[job_id]
        if not job_id:
            raise InvalidInput("job_id is required: the id that Train returned (ListTrainingJobs lists them)")
        job = await asyncio.to_thread(self.jobs.get, job_id)
        if job is None:
            raise ModelNotFound(
                f"no training job {job_id[:64]!r} on this server (ListTrainingJobs lists them)"
            )
        return job

    async def list(
        self, model: str, state: str, page_size: int, page_token: str
    ) -> tuple[list[JobRecord], str]:
        if page_size < 0:
            raise InvalidInput(f"page_size is {page_size}: use 0 for the default (50) or a positive number")
        size = min(page_size or 50, 1000)
        before = None
        if page_token:
            try:
                before = int(page_token)
            except ValueError as exc:
                raise InvalidInput(
                    "page_token is not one this server returned: pass next_page_token"
                ) from exc
        found = await asyncio.to_thread(self.jobs.list, model, state, before, size + 1)
        page = found[:size]
        return page, str(page[-1].seq) if len(found) > size else ""

    async def cancel(self, job_id: str) -> JobRecord:
        job = await self.get(job_id)
        if job.state == "queued":
            done = job.model_copy(
                update={"state": "cancelled", "finished_at": time.time(), "version": 0, "message": ""}
            )
            if await asyncio.to_thread(self.jobs.transition, done, ("queued",)):
                with contextlib.suppress(ValueError):
                    self._queue.remove(job.id)
                await asyncio.to_thread(self._clean, done)
                await self._ended(done, "cancelled while queued")
                return done
            job = await self.get(job_id)  # the scheduler started it meanwhile
        if job.final or STAGES.index(job.stage) >= STAGES.index("promoting"):
            return job  # over, or past the point of no return
        if job.id not in self._active:  # started, but its runner has not taken it up yet
            self._cancel_wanted.add(job.id)
            log.info("job cancel requested", job=job.id, model=job.model)
            return job
        job = self._active[job.id]
        job.cancel_requested = True
        await asyncio.to_thread(self.jobs.save, job)
        await self.executor.cancel(job)
        log.info("job cancel requested", job=job.id, model=job.model)
        return job

    async def watch(self, job_id: str) -> AsyncIterator[Event]:
        """A snapshot now, then every event until the final one (consecutive progress events coalesced
        for a slow reader; state and stage changes never)."""
        live = self._live.setdefault(job_id, _Live())
        seen = len(live.events)
        try:
            job = await self.get(job_id)
        except ModelNotFound:
            self._live.pop(job_id, None)
            raise
        # The snapshot decides, not ``job`` after the yield: a running job's record is the live one, and the
        # job may end while the snapshot is on its way; its final event is then among those after ``seen``.
        snapshot = Event.of(job)
        yield snapshot
        if snapshot.state in FINAL_STATES:
            return
        while True:
            async with live.changed:
                await live.changed.wait_for(lambda n=seen: len(live.events) > n or self._closing)
                if self._closing and len(live.events) == seen:
                    raise ModelNotReady(await self._fate(job_id))
                fresh = live.events[seen:]
                seen = len(live.events)
            for i, event in enumerate(fresh):
                if event.progress_only and i + 1 < len(fresh) and fresh[i + 1].progress_only:
                    continue
                yield event
                if event.state in FINAL_STATES:
                    return

    async def _fate(self, job_id: str) -> str:
        """What a watcher is told when the server shuts down before the job ended."""
        job = await self.get(job_id)
        if job.state == "queued":
            fate = "it stays queued and runs when the server starts again"
        elif job.final:
            fate = f"it ended {job.state}"
        elif self.executor.survives_restart:
            fate = (
                f"it goes on as {self.executor.describe(job)}, which the server follows again when it starts"
            )
        else:
            fate = "it is being stopped and will be FAILED; submit it again"
        return (
            f"the server is shutting down; job {job.id} is {job.state.upper()} (stage {job.stage}): {fate}; "
            "GetTrainingJob tells its final state"
        )

    # ------------------------------------------------------------------ work

    def _threads(self) -> int:
        return self.settings.threads or max(1, (os.cpu_count() or 2) // 2)

    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and len(self._running) < self.settings.max_running and not self._closing:
                self._start_task(self._queue.pop(0))

    def _start_task(self, job_id: str, attach: JobRecord | None = None) -> None:
        self._running.add(job_id)
        self._count()
        task = asyncio.get_running_loop().create_task(self._run(job_id, attach))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job_id: str, attach: JobRecord | None = None) -> None:
        """Start a queued job, or (``attach``) follow again a running one found at start-up."""
        try:
            if attach is not None:
                job = attach
                self._active[job_id] = job
                await self._execute(job, attach=True)
                return
            queued = await asyncio.to_thread(self.jobs.get, job_id)
            if queued is None or queued.state != "queued":
                return
            job = queued.model_copy(
                update={"state": "running", "stage": "training", "started_at": time.time()}
            )
            if not await asyncio.to_thread(self.jobs.transition, job, ("queued",)):
                return  # cancelled while it waited
            self._active[job_id] = job
            job.cancel_requested = job_id in self._cancel_wanted
            await self._execute(job)
        except Exception:
            log.exception("job runner crashed", job=job_id)
            job = self._active.get(job_id) or await asyncio.to_thread(self.jobs.get, job_id)
            if job is not None and not job.final:
                job.error = "internal error of the job runner; the server log has the details"
                await self._finish(job, "failed", job.error, ("queued", "running"))
        finally:
            self._running.discard(job_id)
            self._active.pop(job_id, None)
            self._cancel_wanted.discard(job_id)
            self._count()
            self._wake.set()

    async def _execute(self, job: JobRecord, attach: bool = False) -> None:
        if not attach:
            await self._publish(job, "started")
            if job.cancel_requested:
                await self._finish(job, "cancelled", "cancelled before its process started")
                return
        outcome: dict[str, Any] = {}

        async def apply(event: dict[str, Any]) -> None:
            await self._apply(job, event, outcome)

        async def save() -> None:
            await asyncio.to_thread(self.jobs.save, job)

        ended = await self.executor.run(job, apply, save, attach=attach)
        await self._conclude(job, outcome, ended)

    async def _apply(self, job: JobRecord, event: dict[str, Any], outcome: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "stage":
            job.stage = event["stage"]
            await self._publish(job, event.get("message") or f"stage {job.stage}")
        elif kind == "progress":
            job.step, job.total_steps = int(event["step"]), int(event["total"])
            job.epoch, job.loss = float(event["epoch"]), float(event["loss"])
            if event.get("metrics"):
                job.metrics = {k: float(v) for k, v in event["metrics"].items()}
                job.primary_metric = event.get("primary_metric") or job.primary_metric
                _add_epoch(job, event)
            await self._publish(job, event.get("message", ""), progress_only=not event.get("metrics"))
        elif kind == "trial":
            record = dict(event["trial"])
            job.primary_metric = event.get("primary_metric") or job.primary_metric
            job.trials = [t for t in job.trials if t["number"] != record["number"]] + [record]
            if record["state"] == "running":  # a new trial: its epochs replace the last one's
                job.epoch_metrics, job.best_epoch = [], 0
            complete = [t for t in job.trials if t["state"] == "complete"]
            if complete:
                job.best_trial = max(complete, key=lambda t: t["value"])["number"]
            await self._publish(job, event.get("message", ""), trial=record)
        elif kind == "search":  # the search ended: the job's epochs are the best trial's
            summary = event["summary"]
            job.best_trial = int(summary["best_trial"])
            job.epoch_metrics = [
                {
                    "epoch": int(h["epoch"]),
                    "step": int(h["step"]),
                    "train_loss": float(h.get("train_loss") or 0.0),
                    "metrics": {
                        k: float(v) for k, v in h.items() if k not in ("epoch", "step", "train_loss")
                    },
                }
                for h in event.get("history", [])
            ]
            if job.epoch_metrics:
                key = job.primary_metric
                job.best_epoch = max(job.epoch_metrics, key=lambda e: e["metrics"].get(key, float("-inf")))[
                    "epoch"
                ]
            await self._publish(
                job,
                f"search done ({summary['stopped']}): best trial {job.best_trial}, "
                f"{summary['objective']} {summary['best_value']:.4f}",
            )
        elif kind == "validated":
            job.new_metrics = {k: float(v) for k, v in event["metrics"].items()}
            job.primary_metric = event["primary_metric"]
            await self._publish(
                job,
                f"ONNX model as served: {job.primary_metric} "
                f"{job.new_metrics.get(job.primary_metric, 0):.4f}",
            )
        elif kind == "gate":
            job.baseline_version = int(event["baseline_version"])
            job.baseline_metrics = {k: float(v) for k, v in event["baseline_metrics"].items()}
            job.promotion_reason = event["reason"]
            outcome["promote"] = bool(event["promote"])
            await self._publish(job, f"gate {'passed' if event['passed'] else 'failed'}: {event['reason']}")
        elif kind == "registered":
            job.version = int(event["version"])
            outcome["registered"] = True
            await self._publish(job, f"registered version {job.version}")
        elif kind in ("failed", "cancelled"):
            outcome[kind] = event.get("error", "")

    async def _conclude(self, job: JobRecord, outcome: dict[str, Any], ended: Ended) -> None:
        code = ended.code
        if outcome.get("registered"):
            if outcome.get("promote"):
                try:
                    await self._promote(job.model, job.version)
                    job.promoted = True
                except Exception as exc:  # the version stays registered; the old one keeps serving
                    log.exception("promotion failed", job=job.id, model=job.model, version=job.version)
                    job.promotion_reason += f"; promotion failed: {exc}"
            try:
                await self._after_success(job.model, job.version)
            except Exception as exc:  # retention is housekeeping: the job still succeeded
                log.warning("retention failed", model=job.model, error=str(exc))
            await self._finish(job, "succeeded", _outcome(job))
            return
        if ended.interrupted and not job.cancel_requested:
            job.error = ended.error
            await self._finish(job, "failed", job.error)
            return
        if "cancelled" in outcome or (job.cancel_requested and code in (CANCELLED_EXIT, -9, -15)):
            state = "failed" if job.error else "cancelled"
            await self._finish(job, state, job.error or "cancelled")
            return
        error = outcome.get("failed") or ended.error or f"the job's worker exited with status {code}"
        job.error = error
        await self._finish(job, "failed", error)

    async def _finish(
        self, job: JobRecord, state: str, message: str, from_states: tuple[str, ...] = ("running",)
    ) -> None:
        """End a job this runner owns; nothing happens if its stored state is not one of ``from_states``."""
        # Clean up before the record says it ended: whoever sees a finished job finds nothing left behind.
        await asyncio.to_thread(self._clean, job)
        ended = {"state": state, "finished_at": time.time(), "message": message}
        if state != "succeeded":
            ended["version"] = 0
        # The live record (which GetTrainingJob answers from) changes only once the store has: a caller who
        # sees the job ended can train its model again at once.
        if not await asyncio.to_thread(self.jobs.transition, job.model_copy(update=ended), from_states):
            log.warning("job already ended elsewhere", job=job.id, model=job.model, state=state)
            return
        for name, value in ended.items():
            setattr(job, name, value)
        await self._ended(job, message)

    async def _ended(self, job: JobRecord, message: str) -> None:
        """Tell watchers, metrics and the log that ``job`` ended (once: its transition applied)."""
        await self._notify(job, message)
        state = job.state
        self.metrics.training_jobs_finished.labels(state, str(job.promoted).lower()).inc()
        if job.started_at is not None:
            self.metrics.training_job_duration.observe(job.finished_at - job.started_at)
        self._count()
        log.info(
            "job finished", job=job.id, model=job.model, state=state, version=job.version, message=message
        )
        self._live.pop(job.id, None)

    def _count(self) -> None:
        self.metrics.training_jobs.labels("queued").set(len(self._queue))
        self.metrics.training_jobs.labels("running").set(len(self._running))

    def _clean(self, job: JobRecord) -> None:
        try:
            self.executor.clean(job)
        except Exception as exc:  # housekeeping: the job's outcome stands
            log.warning("executor cleanup failed", job=job.id, error=str(exc))
        shutil.rmtree(job.work_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            shutil.rmtree(self.store.staging_path(job.model, f"job-{job.id}"), ignore_errors=True)

    async def _publish(
        self, job: JobRecord, message: str, progress_only: bool = False, trial: dict[str, Any] | None = None
    ) -> None:
        job.message = message or job.message
        await asyncio.to_thread(self.jobs.save, job)
        await self._notify(job, message, progress_only, trial)

    async def _notify(
        self, job: JobRecord, message: str, progress_only: bool = False, trial: dict[str, Any] | None = None
    ) -> None:
        job.message = message or job.message
        live = self._live.setdefault(job.id, _Live())
        async with live.changed:
            live.events.append(Event.of(job, message, progress_only, trial))
            live.changed.notify_all()


def _add_epoch(job: JobRecord, event: dict[str, Any]) -> None:
    """Record an epoch's validation metrics and which epoch is the best so far (the first of equals, as
    the trainer keeps it)."""
    entry = {
        "epoch": round(float(event["epoch"])),
        "step": int(event["step"]),
        "train_loss": float(event.get("loss") or 0.0),
        "metrics": dict(job.metrics),
    }
    job.epoch_metrics = [e for e in job.epoch_metrics if e["epoch"] != entry["epoch"]] + [entry]
    key = job.primary_metric
    best = max(job.epoch_metrics, key=lambda e: e["metrics"].get(key, float("-inf")))
    job.best_epoch = best["epoch"]


def _outcome(job: JobRecord) -> str:
    """The final message of a job that registered a version: whether it serves, and why."""
    why = f" ({job.promotion_reason})" if job.promotion_reason else ""
    if job.promoted:
        return f"succeeded: version {job.version} serves{why}"
    return (
        f"succeeded: version {job.version} is registered, not served: {job.promotion_reason or 'the gate'}; "
        f"promote it by hand with SetServingVersion (tuneserve models promote {job.model} {job.version})"
    )
