"""A training job's log file is JSON lines: no progress bars, library warnings as records."""

from __future__ import annotations

import json
from pathlib import Path

from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import classification_request, wait_job, wait_until


def test_every_line_of_a_running_jobs_log_is_a_json_object(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    try:
        job = server.training.Train(classification_request("logged", tiny_base, epochs=100)).job
        # Past the first epoch's evaluation: the log has training and evaluation lines (6 steps an epoch).
        wait_until(server, job.id, lambda j: j.progress.step >= 8)
        text = (root / ".jobs" / "work" / job.id / "job.log").read_text()
        lines = text.splitlines()[: text.count("\n")]  # complete lines only: the job is still writing
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON line in the job log: {line!r}\n{text[-3000:]}") from None
        assert all(isinstance(r, dict) and "event" in r for r in records), records
        evaluated = [r for r in records if r["event"] == "evaluated"]
        assert evaluated and evaluated[0]["epoch"] == 1.0, records
        server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
        assert wait_job(server, job.id).state == training_pb2.JOB_STATE_CANCELLED
    finally:
        server.stop()
