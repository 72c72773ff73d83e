"""One live job runner per job store: a second server on the same model root serves, refuses training
with the reason, and never touches the first server's running job."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.v1 import model_pb2, training_pb2

from .live import ServerProcess
from .training import classification_request, job_pids, wait_job, wait_until

RUNNING = training_pb2.JOB_STATE_RUNNING


def test_a_second_server_serves_but_never_touches_the_running_job(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    first = ServerProcess(root, "--intra-op-threads", "1")
    second = third = None
    try:
        job = first.training.Train(classification_request("owned", tiny_base, epochs=100)).job
        before = wait_until(first, job.id, lambda j: j.progress.step >= 2)
        pids = job_pids(job.id)
        assert pids

        second = ServerProcess(root, "--intra-op-threads", "1")
        off = second.wait_event("training off")
        assert off["level"] == "warning" and f"pid {first.pid} on " in off["reason"], off
        calls = [
            (second.training.Train, classification_request("other", tiny_base, epochs=1)),
            (second.training.GetTrainingJob, training_pb2.GetTrainingJobRequest(job_id=job.id)),
            (second.training.ListTrainingJobs, training_pb2.ListTrainingJobsRequest()),
            (second.training.CancelTrainingJob, training_pb2.CancelTrainingJobRequest(job_id=job.id)),
        ]
        for call, request in calls:
            with pytest.raises(grpc.RpcError) as refused:
                call(request)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert f"in use by another server (pid {first.pid} on " in refused.value.details()
        # It serves: overall health and the model RPCs answer; TrainingService is not ready there.
        health = health_pb2_grpc.HealthStub(second.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        training_health = health.Check(health_pb2.HealthCheckRequest(service="tuneserve.v1.TrainingService"))
        assert training_health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        second.models.ListModels(model_pb2.ListModelsRequest())
        assert second.stop() == 0

        # The first server's job ran on, untouched, through the second server's start and stop.
        assert job_pids(job.id) == pids
        later = wait_until(first, job.id, lambda j: j.progress.step > before.progress.step)
        assert later.state == RUNNING and not later.error
        first.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
        assert wait_job(first, job.id).state == training_pb2.JOB_STATE_CANCELLED
        assert first.stop() == 0

        # The owner is gone, and with it the lock: the next server runs the store's jobs.
        third = ServerProcess(root, "--intra-op-threads", "1")
        listed = third.training.ListTrainingJobs(training_pb2.ListTrainingJobsRequest()).jobs
        assert [(j.id, j.state) for j in listed] == [(job.id, training_pb2.JOB_STATE_CANCELLED)]
    finally:
        for server in (first, second, third):
            if server is not None:
                server.stop()
