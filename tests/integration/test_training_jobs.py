"""The Train RPC end to end: real server, real job processes, tiny models."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import common_pb2, inference_pb2, model_pb2, training_pb2

from .live import ServerProcess
from .training import classification_request, job_pids, leftovers, ner_examples, wait_job, wait_until

SUCCEEDED = training_pb2.JOB_STATE_SUCCEEDED
STAGE = training_pb2.TrainingStage


@pytest.fixture()
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def _watch(server: ServerProcess, job_id: str, out: list) -> None:
    for response in server.training.WatchTrainingJob(training_pb2.WatchTrainingJobRequest(job_id=job_id)):
        out.append(response.event)


def test_train_promote_then_retrain_swaps_under_load(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        job = server.training.Train(classification_request("reviews", tiny_base)).job
        assert job.state in (training_pb2.JOB_STATE_QUEUED, training_pb2.JOB_STATE_RUNNING)
        assert job.id and job.model == "reviews" and job.task == common_pb2.TASK_CLASSIFICATION
        watched: list[list] = [[], []]
        watchers = [threading.Thread(target=_watch, args=(server, job.id, w)) for w in watched]
        for w in watchers:
            w.start()
        done = wait_job(server, job.id)
        for w in watchers:
            w.join(30)
        assert done.state == SUCCEEDED, done.error
        assert done.version == 1 and done.promoted, done.promotion_reason
        assert done.primary_metric == "accuracy" and 0 <= done.new_metrics["accuracy"] <= 1
        assert done.baseline_version == 0 and not done.baseline_metrics
        assert done.progress.step == done.progress.total_steps > 0
        assert done.started_at.seconds and done.finished_at.seconds
        for events in watched:
            assert events[-1].state == SUCCEEDED
            stages = [e.stage for e in events]
            assert stages == sorted(stages), "stages only move forward"
            for stage in ("TRAINING", "EXPORTING", "QUANTIZING", "VALIDATING", "GATING", "PROMOTING"):
                assert STAGE.Value(f"TRAINING_STAGE_{stage}") in stages
            assert any(e.progress.step > 0 for e in events)
            assert any(e.metrics for e in events)
        reply = server.inference.Classify(inference_pb2.ClassifyRequest(model="reviews", texts=["great"]))
        assert reply.version == 1
        assert not leftovers(empty_root)

        # Retrain with a tolerant gate while Classify load runs; then roll back. No call may fail.
        failures, versions, stop = [], set(), threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    r = server.inference.Classify(
                        inference_pb2.ClassifyRequest(model="reviews", texts=["fine", "awful"]), timeout=10
                    )
                    versions.add(r.version)
                except grpc.RpcError as exc:
                    failures.append(exc.code())

        clients = [threading.Thread(target=load) for _ in range(4)]
        for c in clients:
            c.start()
        second = server.training.Train(
            classification_request("reviews", tiny_base, promotion_tolerance=1.0, epochs=2)
        ).job
        done = wait_job(server, second.id)
        assert done.state == SUCCEEDED and done.version == 2 and done.promoted, done.promotion_reason
        assert done.baseline_version == 1 and "accuracy" in done.baseline_metrics
        time.sleep(0.5)
        model = server.models.SetServingVersion(model_pb2.SetServingVersionRequest(name="reviews", version=1))
        assert model.model.serving_version == 1
        time.sleep(0.5)
        stop.set()
        for c in clients:
            c.join(30)
        assert failures == []
        assert versions == {1, 2}
        assert LocalModelStore(empty_root).serving_version("reviews") == 1
        # The serving version cannot be deleted; another can, and its number is not reused.
        with pytest.raises(grpc.RpcError) as refused:
            server.models.DeleteModelVersion(model_pb2.DeleteModelVersionRequest(name="reviews", version=1))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        server.models.DeleteModelVersion(model_pb2.DeleteModelVersionRequest(name="reviews", version=2))
        assert LocalModelStore(empty_root).versions("reviews") == [1]
    finally:
        server.stop()


def test_gate_refuses_a_worse_model(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1", "--keep-versions", "2")
    try:
        good = classification_request("gated", tiny_base, epochs=20)
        first = wait_job(server, server.training.Train(good).job.id)
        assert first.state == SUCCEEDED and first.promoted, first.error
        assert first.new_metrics["accuracy"] >= 0.75, "the tiny model learns the fixture"
        worse = server.training.Train(classification_request("gated", tiny_base, epochs=20, flip=True)).job
        done = wait_job(server, worse.id)
        assert done.state == SUCCEEDED and done.version == 2
        assert not done.promoted
        assert done.new_metrics["accuracy"] < done.baseline_metrics["accuracy"]
        assert "< baseline" in done.promotion_reason
        assert LocalModelStore(empty_root).serving_version("gated") == 1
        reply = server.inference.Classify(inference_pb2.ClassifyRequest(model="gated", texts=["great"]))
        assert reply.version == 1
        # Register-only never promotes a later version, even a good one.
        kept = server.training.Train(
            classification_request(
                "gated",
                tiny_base,
                promotion_policy=training_pb2.PROMOTION_POLICY_REGISTER_ONLY,
                promotion_tolerance=1.0,
                epochs=1,
            )
        ).job
        done = wait_job(server, kept.id)
        assert done.state == SUCCEEDED and done.version == 3 and not done.promoted
        assert "REGISTER_ONLY" in done.promotion_reason
        # Retention (--keep-versions 2): the oldest version that does not serve is gone.
        assert LocalModelStore(empty_root).versions("gated") == [1, 3]
        assert LocalModelStore(empty_root).serving_version("gated") == 1
    finally:
        server.stop()


def test_cancel_stops_the_job_and_leaves_serving_alone(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        job = server.training.Train(classification_request("cancelled", tiny_base, epochs=100)).job
        wait_until(server, job.id, lambda j: j.progress.step >= 2)
        assert job_pids(job.id)
        started = time.monotonic()
        server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
        done = wait_job(server, job.id, timeout=60)
        assert done.state == training_pb2.JOB_STATE_CANCELLED
        assert time.monotonic() - started < 20
        assert done.version == 0 and not done.promoted
        assert LocalModelStore(empty_root).versions("cancelled") == []
        assert not job_pids(job.id)
        assert not leftovers(empty_root)
        # Cancelling a finished job changes nothing.
        again = server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id)).job
        assert again.state == training_pb2.JOB_STATE_CANCELLED
    finally:
        server.stop()


def test_killed_job_process_fails_the_job(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        job = server.training.Train(classification_request("killed", tiny_base, epochs=100)).job
        wait_until(server, job.id, lambda j: j.progress.step >= 2)
        for pid in job_pids(job.id):
            os.kill(pid, signal.SIGKILL)
        done = wait_job(server, job.id, timeout=60)
        assert done.state == training_pb2.JOB_STATE_FAILED
        assert "signal 9" in done.error
        assert LocalModelStore(empty_root).versions("killed") == []
        assert not leftovers(empty_root)
        # The server still trains: the next job for the model runs.
        assert server.training.Train(classification_request("killed", tiny_base, epochs=1)).job.id
    finally:
        server.stop()


def test_server_killed_mid_job_then_restarted(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    running = server.training.Train(classification_request("interrupted", tiny_base, epochs=100)).job
    wait_until(server, running.id, lambda j: j.progress.step >= 2)
    waiting = server.training.Train(classification_request("queued", tiny_base, epochs=1)).job
    assert waiting.state == training_pb2.JOB_STATE_QUEUED
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while job_pids(running.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not job_pids(running.id), "the job process outlived its server"

    restarted = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        failed = restarted.training.GetTrainingJob(training_pb2.GetTrainingJobRequest(job_id=running.id)).job
        assert failed.state == training_pb2.JOB_STATE_FAILED
        assert "server stopped" in failed.error
        assert LocalModelStore(empty_root).versions("interrupted") == []
        done = wait_job(restarted, waiting.id)
        assert done.state == SUCCEEDED and done.promoted, done.error
        listed = restarted.training.ListTrainingJobs(training_pb2.ListTrainingJobsRequest()).jobs
        assert [j.id for j in listed] == [waiting.id, running.id]
        assert not leftovers(empty_root)
    finally:
        restarted.stop()


def test_ner_job_and_uri_data(empty_root: Path, tiny_base: Path, tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "ner_train.conll", data_root / "train.conll")
    server = ServerProcess(empty_root, "--intra-op-threads", "1", "--data-root", str(data_root))
    try:
        request = training_pb2.TrainRequest(
            model="entities",
            task=common_pb2.TASK_TOKEN_CLASSIFICATION,
            base_model=str(tiny_base),
            training_data=training_pb2.Dataset(uri="train.conll"),
            validation_data=training_pb2.Dataset(
                token_examples=training_pb2.TokenExamples(examples=ner_examples("ner_validation.conll"))
            ),
            hyperparameters=training_pb2.Hyperparameters(
                epochs=2, learning_rate=1e-3, batch_size=8, max_length=32
            ),
            quantization=common_pb2.QUANTIZATION_NONE,
        )
        done = wait_job(server, server.training.Train(request).job.id)
        assert done.state == SUCCEEDED and done.promoted, done.error
        assert done.primary_metric == "entity_f1"
        reply = server.inference.ExtractEntities(
            inference_pb2.ExtractEntitiesRequest(model="entities", texts=["John lives in Paris"])
        )
        assert reply.version == 1
        version = server.models.GetModel(model_pb2.GetModelRequest(name="entities")).model.versions[0]
        assert version.quantization == common_pb2.QUANTIZATION_NONE
    finally:
        server.stop()


def test_sigterm_mid_job_drains_and_fails_the_job(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    job = server.training.Train(classification_request("drained", tiny_base, epochs=100)).job
    wait_until(server, job.id, lambda j: j.progress.step >= 2)
    waiting = server.training.Train(classification_request("waiting", tiny_base, epochs=1)).job
    assert waiting.state == training_pb2.JOB_STATE_QUEUED
    events: list = []
    queued_events: list = []
    ends: dict[str, grpc.RpcError | None] = {}
    watchers = [
        threading.Thread(target=_watch_to_end, args=(server, job.id, events, ends)),
        threading.Thread(target=_watch_to_end, args=(server, waiting.id, queued_events, ends)),
    ]
    for w in watchers:
        w.start()
    while len(events) < 1 or len(queued_events) < 1:
        time.sleep(0.05)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 20, "a running job must not hold the drain"
    for w in watchers:
        w.join(10)
    assert not job_pids(job.id)
    # The running job's watcher sees its final state; the queued one's is told that it stays queued.
    assert ends[job.id] is None and events[-1].state == training_pb2.JOB_STATE_FAILED, (ends, events[-1])
    error = ends[waiting.id]
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in error.details() and "stays queued" in error.details()
    restarted = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        done = restarted.training.GetTrainingJob(training_pb2.GetTrainingJobRequest(job_id=job.id)).job
        assert done.state == training_pb2.JOB_STATE_FAILED and "shut down" in done.error
        assert LocalModelStore(empty_root).versions("drained") == []
    finally:
        restarted.stop()


def _watch_to_end(server: ServerProcess, job_id: str, out: list, ends: dict) -> None:
    try:
        _watch(server, job_id, out)
        ends[job_id] = None
    except grpc.RpcError as exc:
        ends[job_id] = exc


def _watch_quietly(server: ServerProcess, job_id: str, out: list) -> None:
    with contextlib.suppress(grpc.RpcError):
        _watch(server, job_id, out)
