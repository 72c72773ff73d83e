"""A Train call when the jobs folder's disk is full: RESOURCE_EXHAUSTED with a reason, the traceback in the
log, nothing left behind; and the server trains again once space is back."""

from __future__ import annotations

from pathlib import Path

import grpc

from tinydisk import fill, tiny_disk
from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import classification_request, wait_job


def test_full_jobs_disk_is_resource_exhausted_and_logged(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    with tiny_disk(tmp_path / "jobs", "512k") as jobs:
        server = ServerProcess(root, "--intra-op-threads", "1", "--jobs-dir", str(jobs))
        try:
            fill(jobs)
            try:
                server.training.Train(classification_request("full", tiny_base))
                raise AssertionError("Train succeeded on a full disk")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
                assert "no space left" in exc.details() and "nothing was queued" in exc.details()
            logged = server.wait_event("train refused: no space for the job")
            assert "Traceback" in logged["exception"] and "No space left" in logged["exception"]
            assert not list((jobs / "work").glob("*"))

            (jobs / "filler").unlink()
            job = server.training.Train(classification_request("full", tiny_base, epochs=100)).job
            server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
            assert wait_job(server, job.id, timeout=120).state == training_pb2.JOB_STATE_CANCELLED
        finally:
            server.stop()
