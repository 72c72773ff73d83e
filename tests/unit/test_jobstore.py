"""The SQLite job store: jobs survive a reopen, list newest first with filters and pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tuneserve.server.jobstore import JobRecord, JobStore, JobStoreBusy, RunnerLock


def _job(i: int, model: str, state: str = "queued") -> JobRecord:
    return JobRecord(id=f"job{i}", model=model, task="classification", base_model="b", state=state)


def test_jobs_survive_reopen_and_list_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    for i, (model, state) in enumerate(
        [("a", "succeeded"), ("b", "failed"), ("a", "running"), ("c", "queued")]
    ):
        store.add(_job(i, model, state))
    job = store.get("job1")
    assert job is not None
    job.error = "boom"
    store.save(job)
    store.close()

    store = JobStore(path)
    assert store.get("job1").error == "boom"  # type: ignore[union-attr]
    assert store.get("nope") is None
    assert [j.id for j in store.list()] == ["job3", "job2", "job1", "job0"]
    assert [j.id for j in store.list(model="a")] == ["job2", "job0"]
    assert [j.id for j in store.list(state="failed")] == ["job1"]
    first = store.list(limit=2)
    assert [j.id for j in store.list(before_seq=first[-1].seq, limit=2)] == ["job1", "job0"]
    assert [j.id for j in store.unfinished()] == ["job2", "job3"]
    store.add(_job(9, "d"))
    assert store.get("job9").seq == 5  # type: ignore[union-attr]


def test_transition_is_a_compare_and_set_and_save_keeps_the_state(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    store.add(_job(1, "a"))
    queued = store.get("job1")
    assert queued is not None
    cancelled = queued.model_copy(update={"state": "cancelled"})
    started = queued.model_copy(update={"state": "running"})
    assert store.transition(cancelled, ("queued",))
    assert not store.transition(started, ("queued",)), "a cancelled job cannot start"
    assert not store.save(started), "save never changes the state"
    assert store.get("job1").state == "cancelled"  # type: ignore[union-attr]
    cancelled.error = "x"
    assert store.save(cancelled)
    assert store.get("job1").error == "x"  # type: ignore[union-attr]
    assert [j.id for j in store.unfinished()] == []


def test_one_process_holds_the_runner_lock_until_it_dies(tmp_path: Path) -> None:
    """Another process's lock refuses us (naming it); once that process is killed the lock is ours."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tuneserve.server.jobstore import RunnerLock; "
            "RunnerLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(JobStoreBusy, match=f"in use by another server \\(pid {holder.pid} on "):
            RunnerLock.acquire(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    lock = RunnerLock.acquire(tmp_path)
    with pytest.raises(JobStoreBusy, match=f"pid {os.getpid()} "):  # also within one process
        RunnerLock.acquire(tmp_path)
    lock.release()
    RunnerLock.acquire(tmp_path).release()
