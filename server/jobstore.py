"""Training jobs on disk: one SQLite file beside the models, so jobs survive a restart of the server.

Each job is one row: a few indexed columns to filter and order by, and the whole ``JobRecord`` as JSON.
Writes are small and commit at once (WAL journal); the server is the only writer.

One process at a time runs a store's jobs: it holds ``RunnerLock`` (an exclusive ``flock`` on
``runner.lock`` beside the database) for as long as it lives, and the kernel drops the lock when it exits,
however it exits. Another server on the same store gets ``JobStoreBusy``, naming the owner.

A job's state changes only through ``transition``, a compare-and-set: it applies only if the stored state
is one the caller expected, so of a cancel and a start racing for a queued job exactly one wins. ``save``
writes the rest of the record and never changes the state.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# The stages of a job, in order (TrainingStage in the proto).
STAGES = ("queued", "training", "evaluating", "exporting", "quantizing", "validating", "gating", "promoting")

LOCK_FILE = "runner.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    model TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_model ON jobs (model, seq);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""


class JobRecord(BaseModel):
    """A training job as the server remembers it (TrainingJob in the proto)."""

    id: str
    seq: int = 0
    model: str
    task: str
    base_model: str
    state: State = "queued"
    stage: str = "queued"
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict)  # latest validation metrics
    # per epoch: {"epoch", "step", "train_loss", "metrics"}; best_epoch: the one kept (0: none yet)
    epoch_metrics: list[dict[str, Any]] = Field(default_factory=list)
    best_epoch: int = 0
    primary_metric: str = ""
    new_metrics: dict[str, float] = Field(default_factory=dict)
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    baseline_version: int = 0
    version: int = 0
    promoted: bool = False
    promotion_reason: str = ""
    error: str = ""
    message: str = ""
    pid: int = 0
    kube_job: str = ""  # namespace/name of its Kubernetes Job (the Kubernetes executor)
    work_dir: str = ""
    cancel_requested: bool = False
    # A search's trials (Trial in the proto): {"number", "params", "state", "value", "metrics", "history",
    # "seconds", "error"}; best_trial: the best complete one (None: none yet, or no search).
    trials: list[dict[str, Any]] = Field(default_factory=list)
    best_trial: int | None = None
    spec: dict[str, Any] = Field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class JobStore:
    """CRUD over the jobs table. Thread-safe; every call is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, job: JobRecord) -> JobRecord:
        """Insert a new job; assigns its ``seq`` (creation order)."""
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
            job.seq = last + 1
            self._db.execute(
                "INSERT INTO jobs (id, seq, model, state, data) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.seq, job.model, job.state, job.model_dump_json()),
            )
        return job

    def save(self, job: JobRecord) -> bool:
        """Write ``job`` if its stored state is still ``job.state``; False (nothing written) otherwise."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET data = ? WHERE id = ? AND state = ?",
                (job.model_dump_json(), job.id, job.state),
            )
        return cursor.rowcount == 1

    def transition(self, job: JobRecord, from_states: Iterable[str]) -> bool:
        """Write ``job`` (its new state included) only if the stored state is one of ``from_states``;
        whether it applied."""
        expected = tuple(from_states)
        marks = ", ".join("?" * len(expected))
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE jobs SET state = ?, data = ? WHERE id = ? AND state IN ({marks})",
                (job.state, job.model_dump_json(), job.id, *expected),
            )
        return cursor.rowcount == 1

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    def list(
        self, model: str = "", state: str = "", before_seq: int | None = None, limit: int = 50
    ) -> list[JobRecord]:
        """Jobs newest first, optionally of one model / in one state / older than ``before_seq``."""
        where, args = [], []
        if model:
            where.append("model = ?")
            args.append(model)
        if state:
            where.append("state = ?")
            args.append(state)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = "SELECT data FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [JobRecord.model_validate_json(r[0]) for r in rows]

    def unfinished(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq"
            ).fetchall()
        return [JobRecord.model_validate_json(r[0]) for r in rows]


class JobStoreBusy(Exception):
    """Another live process holds the job store's ``RunnerLock``."""


class RunnerLock:
    """The right to run a job store's jobs: an exclusive ``flock`` on ``folder/runner.lock``.

    Held until ``release`` or the end of the process (a crash included: the kernel releases it), so a
    server that gets it knows that no live server runs the jobs it finds unfinished. The file records the
    owner (pid, host, start time) for the refusal message; its content is informative only.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: Path) -> RunnerLock:
        """Take the lock without waiting; ``JobStoreBusy`` (naming the owner) if another process holds it."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # job processes never inherit it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobStoreBusy(f"the job store {folder} is in use by {_owner(path)}") from None
        except BaseException:
            os.close(fd)
            raise
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode() + b"\n", 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


def _owner(path: Path) -> str:
    """Who holds the lock, as its file says (it may be mid-write: then just "another process")."""
    try:
        owner = json.loads(path.read_text())
        return f"another server (pid {owner['pid']} on {owner['host']}, since {owner['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
