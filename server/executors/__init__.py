"""How a training job runs: an ``Executor`` spawns its worker, feeds the worker's events to the runner,
cancels it, and finds it again after a restart. Everything else (queue, events folded into the job record,
gate and promotion, job store) is ``JobRunner``'s, shared by every executor.

- ``local`` (``LocalExecutor``): a process of this server, events over a pipe; the default.
- ``kubernetes`` (``KubernetesExecutor``): one ``batch/v1`` Job per training job, events through its
  pod's log; the Job outlives a restart of the server, which follows it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tuneserve.repository import StoreConfig
from tuneserve.server.jobstore import JobRecord
from tuneserve.server.settings import TrainingSettings

Apply = Callable[[dict[str, Any]], Awaitable[None]]  # the runner's handling of one worker event
Save = Callable[[], Awaitable[None]]  # saves the job record (after the executor set pid or kube_job)


@dataclass
class Ended:
    """How a job's worker ended: its exit status (3: cancelled) and, when it did not succeed, why in
    words (a crash's log tail, a pod's failure reason)."""

    code: int
    error: str = ""
    interrupted: bool = False  # stopped from outside, not by a cancel (``error`` says how): it failed


class Executor(Protocol):
    #: Whether a job keeps running when the server stops (the runner then leaves it running, and
    #: ``recover`` finds it again).
    survives_restart: bool

    async def run(self, job: JobRecord, apply: Apply, save: Save, attach: bool = False) -> Ended:
        """Run ``job`` (or, with ``attach``, follow it again after a restart) until its worker ended,
        handing each event of the worker to ``apply``."""
        ...

    async def cancel(self, job: JobRecord) -> None:
        """Ask the running ``job`` to stop; ``run`` then returns."""
        ...

    async def stop(self, job: JobRecord) -> None:
        """The server shuts down: stop ``job`` if it does not survive a restart."""
        ...

    async def recover(self, job: JobRecord) -> bool:
        """A job the store says was running when the server stopped: whether ``run(attach=True)`` can
        follow it (otherwise whatever is left of it is stopped)."""
        ...

    def clean(self, job: JobRecord) -> None:
        """Remove what the executor left for ``job`` (blocking; the job has ended)."""
        ...

    def describe(self, job: JobRecord) -> str:
        """Where ``job`` runs, in words (for messages)."""
        ...


def make_executor(settings: TrainingSettings, store: StoreConfig) -> Executor:
    """The executor that ``settings.executor`` names."""
    if settings.executor == "kubernetes":
        from tuneserve.server.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor(settings, store)
    from tuneserve.server.executors.local import LocalExecutor

    return LocalExecutor(settings)
