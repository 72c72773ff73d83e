"""Races of the Train RPCs on a live server: a cancel racing the scheduler, at machine speed."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from tuneserve.v1 import training_pb2

from .live import ServerProcess, metric_value
from .training import classification_request, job_pids, leftovers, wait_job

CANCELLED = training_pb2.JOB_STATE_CANCELLED
CALLERS = 4
ROUNDS = 15


@pytest.fixture()
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def test_cancel_racing_the_scheduler_never_runs_blocks_or_double_counts(
    empty_root: Path, tiny_base: Path
) -> None:
    """Each caller trains its own model and cancels the job the moment Train answers, again and again.

    A job that Cancel answered CANCELLED (and not started) never starts, never blocks the next Train of its
    model, and is counted once; a job that the scheduler took first is stopped and ends CANCELLED too."""
    # Fewer slots than callers: jobs wait in the queue, and the scheduler takes them as slots free up.
    server = ServerProcess(empty_root, "--intra-op-threads", "1", "--max-running-jobs", str(CALLERS // 2))
    problems: list[str] = []
    jobs: list[str] = []
    cancelled_at_once = 0
    lock = threading.Lock()

    def caller(model: str) -> None:
        nonlocal cancelled_at_once
        request = classification_request(model, tiny_base, epochs=100)
        for _ in range(ROUNDS):
            try:
                job = server.training.Train(request).job
            except grpc.RpcError as exc:
                problems.append(f"Train {model}: {exc.code().name} {exc.details()}")
                return
            answer = server.training.CancelTrainingJob(
                training_pb2.CancelTrainingJobRequest(job_id=job.id)
            ).job
            with lock:
                jobs.append(job.id)
            if answer.state == CANCELLED and not answer.started_at.seconds:  # the cancel won the race
                with lock:
                    cancelled_at_once += 1
                # The next Train of this model must be admitted: nothing of this job may block it.
                seen = server.training.GetTrainingJob(training_pb2.GetTrainingJobRequest(job_id=job.id)).job
                if seen.state != CANCELLED or seen.started_at.seconds or job_pids(job.id):
                    problems.append(f"job {job.id} was cancelled while queued, then ran: {seen}")
                continue
            done = wait_job(server, job.id, timeout=120)
            if done.state != CANCELLED:
                problems.append(f"job {job.id} ended {done.state} after a cancel: {done.error}")

    try:
        threads = [threading.Thread(target=caller, args=(f"race{i}",)) for i in range(CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not problems, problems
        assert len(jobs) == CALLERS * ROUNDS
        for job_id in jobs:
            final = wait_job(server, job_id, timeout=120)
            assert final.state == CANCELLED, final
        text = server.scrape()
        finished = sum(
            metric_value(text, "tuneserve_training_jobs_finished_total", state=state, promoted="false")
            for state in ("succeeded", "failed", "cancelled")
        )
        assert finished == len(jobs), "each job is counted once"
        assert metric_value(text, "tuneserve_training_jobs_finished_total", state="cancelled") == len(jobs)
        assert not leftovers(empty_root)
        assert not [e for e in server.events if e.get("event") == "job runner crashed"]
        print(f"{cancelled_at_once} of {len(jobs)} jobs were cancelled before they started")
    finally:
        server.stop()
