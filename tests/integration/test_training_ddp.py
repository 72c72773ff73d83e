"""Train RPC jobs under torchrun: nproc_per_node bounded by the server, and a 2-process job end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import psutil
import pytest

from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import classification_request, job_pids, leftovers, wait_job


def _watch(server: ServerProcess, job_id: str, out: list) -> None:
    for response in server.training.WatchTrainingJob(training_pb2.WatchTrainingJobRequest(job_id=job_id)):
        out.append(response.event)


def _ranks(job_id: str, timeout: float = 120) -> list[psutil.Process]:
    """The rank processes of a running job (under its torchrun, in a session of their own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in job_pids(job_id):
            family = psutil.Process(pid).children(recursive=True)
            ranks = [p for p in family if p.cmdline()[1:4] == ["-u", "-m", "tuneserve.trainer.worker"]]
            if len(ranks) == 2:
                return ranks
        time.sleep(0.2)
    raise AssertionError(f"job {job_id}: no 2 ranks running within {timeout} s")


def test_nproc_per_node_bounded_then_two_ranks_train(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(
        root, "--intra-op-threads", "1", "--max-nproc-per-node", "2", "--training-threads", "2"
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:
            server.training.Train(classification_request("reviews", tiny_base, nproc_per_node=3))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nproc_per_node is 3" in refused.value.details()
        assert "training.max_nproc_per_node" in refused.value.details()

        request = classification_request("reviews", tiny_base, epochs=2, nproc_per_node=2)
        job = server.training.Train(request).job
        events: list = []
        watcher = threading.Thread(target=_watch, args=(server, job.id, events))
        watcher.start()
        ranks = _ranks(job.id)
        assert sorted(p.environ()["RANK"] for p in ranks) == ["0", "1"]
        assert {p.environ()["WORLD_SIZE"] for p in ranks} == {"2"}
        done = wait_job(server, job.id)
        watcher.join(30)
    finally:
        server.stop()
    assert done.state == training_pb2.JOB_STATE_SUCCEEDED, done.error
    assert done.version == 1 and done.promoted
    assert done.progress.step == done.progress.total_steps > 0
    # 48 examples, 8 per rank and step, 2 ranks: 3 steps an epoch
    assert done.progress.total_steps == 3 * 2
    assert [e.epoch for e in done.epoch_metrics] == [1, 2]
    evaluated = [e.message for e in events if e.message.startswith("epoch ")]
    assert [m.split(":")[0] for m in evaluated] == ["epoch 1/2", "epoch 2/2"], evaluated
    steps = [e.progress.step for e in events if e.stage == training_pb2.TRAINING_STAGE_TRAINING]
    assert steps == sorted(steps), "progress only moves forward"
    alive = psutil.wait_procs(ranks, timeout=10)[1]
    assert not alive and not leftovers(root)
