"""Experiment tracking of training runs against real stores: MLflow's own SQLite store in a temporary
folder (through the Train RPC of a live server, configured by MLFLOW_* only), and TensorBoard event files
(local ``tuneserve train``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import FIXTURES
from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import classification_request, wait_job

pytest.importorskip("mlflow", reason="the tracking extra is not installed")


def test_mlflow_parent_run_and_a_nested_run_per_trial(tmp_path: Path, tiny_base: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "tuneserve-test"}
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1", "--report-to", "mlflow", env=env)
    try:
        search = training_pb2.Search(
            trials=2,
            space=[training_pb2.SearchDimension(name="learning_rate", low=5e-4, high=2e-3, log=True)],
            prune=False,
        )
        job = server.training.Train(classification_request("tracked", tiny_base, epochs=2, search=search)).job
        done = wait_job(server, job.id)
        assert done.state == training_pb2.JOB_STATE_SUCCEEDED, done.error
    finally:
        server.stop()

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tuneserve-test")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["tuneserve.job_id"] == job.id and parent.data.tags["tuneserve.model"] == "tracked"
    assert parent.data.params["task"] == "classification" and parent.data.params["epochs"] == "2"
    assert parent.data.params["train_examples"] and parent.data.params["validation_examples"]
    assert "learning_rate" not in parent.data.params  # searched: a trial's param, not the job's
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_trial"] == done.best_trial

    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: int(r.data.tags["tuneserve.trial"]),
    )
    assert [r.info.run_name for r in children] == ["trial-0", "trial-1"]
    for run, trial in zip(children, done.trials, strict=True):
        assert float(run.data.params["learning_rate"]) == pytest.approx(
            trial.hyperparameters.learning_rate, 1e-6
        )
        history = client.get_metric_history(run.info.run_id, "accuracy")
        assert [m.step for m in history] == [1, 2]  # one point per epoch
        assert [m.value for m in history][-1] == pytest.approx(trial.metrics["accuracy"])
        assert client.get_metric_history(run.info.run_id, "train_loss"), "the loss curve"
        assert run.data.tags["tuneserve.trial_state"] == "complete"


def test_tensorboard_scalars_under_the_checkpoint(tmp_path: Path, tiny_base: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    output = tmp_path / "out"
    out = subprocess.run(
        [
            sys.executable,
            *("-m", "tuneserve.cli", "train", "--task", "classification"),
            *("--train", str(FIXTURES / "sentiment_train.tsv")),
            *("--validation", str(FIXTURES / "sentiment_validation.tsv")),
            *("--output", str(output), "--base", str(tiny_base), "--epochs", "2", "--max-length", "32"),
            *("--report-to", "tensorboard"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output / "runs" / "run"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "validation/accuracy" in scalars
    assert [e.step for e in events.Scalars("validation/accuracy")] == [1, 2]
