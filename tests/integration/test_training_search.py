"""Hyperparameter search through the Train RPC and ``tuneserve train``: real server, real job processes,
tiny models. The trials are reported, the best is promoted, cancel keeps the best only when asked, bad
search specs are refused (INVALID_ARGUMENT on the RPC, a usage error naming --search on the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from helpers import FIXTURES
from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import classification_request, code_of, leftovers, wait_job, wait_until

SUCCEEDED = training_pb2.JOB_STATE_SUCCEEDED
COMPLETE, PRUNED = training_pb2.TRIAL_STATE_COMPLETE, training_pb2.TRIAL_STATE_PRUNED
RUNNING, FAILED = training_pb2.TRIAL_STATE_RUNNING, training_pb2.TRIAL_STATE_FAILED


@pytest.fixture()
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def _search(trials: int, *dims: training_pb2.SearchDimension, **fields: object) -> training_pb2.Search:
    return training_pb2.Search(trials=trials, space=list(dims), **fields)


def _dim(
    name: str, low: float = 0, high: float = 0, log: bool = False, choices=()
) -> training_pb2.SearchDimension:
    return training_pb2.SearchDimension(name=name, low=low, high=high, log=log, choices=list(choices))


def _params(trial: training_pb2.Trial) -> dict:
    return {f.name: v for f, v in trial.hyperparameters.ListFields()}


def test_three_trial_search_promotes_the_best(empty_root: Path, tiny_base: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        # Bad searches are refused before a job exists, naming the field.
        for search, says in [
            (_search(2, _dim("dropout", 0, 1)), "search.space[0]: 'dropout' cannot be searched"),
            (
                _search(2, _dim("learning_rate", 1e-3, 1e-5)),
                "search.space[0]: learning_rate=0.001:1e-05 is an empty",
            ),
            (_search(2, _dim("batch_size", 8.5, 32)), "search.space[0]: batch_size is an integer"),
            (_search(2, _dim("learning_rate", 1e-5, 2)), "search.space[0]: learning_rate: 2 is out of range"),
            (
                _search(2, _dim("epochs", 2, 4), _dim("epochs", 3, 5)),
                "search.space[1]: 'epochs' is given twice",
            ),
            (_search(2, _dim("freeze", choices=["none", "9"])), "search.space.freeze is 9"),
            (_search(-1), "search.trials is -1"),
        ]:
            request = classification_request("refused", tiny_base, search=search)
            with pytest.raises(grpc.RpcError) as err:
                server.training.Train(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert says in err.value.details(), err.value.details()

        search = _search(
            3, _dim("learning_rate", 1e-4, 3e-3, log=True), _dim("batch_size", choices=["4", "8"])
        )
        request = classification_request("searched", tiny_base, epochs=3, search=search)
        job = server.training.Train(request).job
        events: list = []
        watcher = threading.Thread(
            target=lambda: events.extend(
                r.event
                for r in server.training.WatchTrainingJob(training_pb2.WatchTrainingJobRequest(job_id=job.id))
            )
        )
        watcher.start()
        done = wait_job(server, job.id)
        watcher.join(30)
        assert done.state == SUCCEEDED, done.error
        assert done.version == 1 and done.promoted, done.promotion_reason

        # GetTrainingJob: the trials table, with the best complete trial marked.
        assert [t.number for t in done.trials] == [0, 1, 2]
        assert all(t.state in (COMPLETE, PRUNED) for t in done.trials)
        for t in done.trials:
            params = _params(t)
            assert set(params) == {"learning_rate", "batch_size"} and params["batch_size"] in (4, 8)
            assert 1e-4 <= params["learning_rate"] <= 3e-3
            assert t.HasField("value") and t.metrics["accuracy"] >= 0 and t.epochs >= 1
        complete = [t for t in done.trials if t.state == COMPLETE]
        best = max(complete, key=lambda t: t.value)
        assert done.HasField("best_trial") and done.best_trial == best.number
        assert [e.epoch for e in done.epoch_metrics] == list(range(1, best.epochs + 1))

        # The events: each trial announced running then finished, with its number and hyperparameters.
        trial_events = [(e.trial.number, e.trial.state) for e in events if e.HasField("trial")]
        for n in (0, 1, 2):
            assert (n, RUNNING) in trial_events and any(num == n and s != RUNNING for num, s in trial_events)
        assert any(e.trial.hyperparameters.HasField("learning_rate") for e in events if e.HasField("trial"))
        assert any(e.HasField("trial") and e.metrics for e in events), "epoch metrics during a trial"
        assert events[-1].state == SUCCEEDED

        # The registered version was trained with the best trial's values, and says so.
        store = LocalModelStore(empty_root)
        manifest = store.open_version("searched", 1).manifest
        hyper = manifest.training["hyperparameters"]
        assert hyper["batch_size"] == _params(best)["batch_size"]
        assert hyper["learning_rate"] == pytest.approx(_params(best)["learning_rate"], rel=1e-6)
        assert hyper["epochs"] == 3  # fixed, not searched
        # The search is in the version's lineage: its trials, the best one and the values it chose.
        assert manifest.lineage is not None and manifest.lineage.search is not None
        searched = manifest.lineage.search
        assert searched["best_trial"] == best.number and searched["objective"] == "accuracy"
        assert searched["sampler"] == "TPE" and searched["pruner"] == "median"
        assert [t["number"] for t in searched["trials"]] == [0, 1, 2]
        assert searched["chosen"]["batch_size"] == _params(best)["batch_size"]
        assert not leftovers(empty_root)

        # tuneserve jobs get prints the job as JSON and the trials as a table.
        out = subprocess.run(
            [sys.executable, "-m", "tuneserve.cli", "jobs", "get", job.id, "--server", server.target],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)["trials"]) == 3
        table = out.stderr.splitlines()
        assert table[0].split()[:3] == ["trial", "state", "accuracy"]
        assert table[1 + best.number].startswith(f"*{best.number}")
    finally:
        server.stop()


@pytest.mark.parametrize("keep_best", [False, True])
def test_cancel_mid_search(empty_root: Path, tiny_base: Path, keep_best: bool) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        search = _search(20, _dim("learning_rate", 5e-4, 2e-3), keep_best_on_cancel=keep_best, prune=False)
        job = server.training.Train(
            classification_request("cancelled", tiny_base, epochs=3, search=search)
        ).job
        wait_until(server, job.id, lambda j: any(t.state == COMPLETE for t in j.trials))
        server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
        done = wait_job(server, job.id)
        assert len(done.trials) < 20
        store = LocalModelStore(empty_root)
        if not keep_best:
            assert done.state == training_pb2.JOB_STATE_CANCELLED, done.error
            assert done.version == 0 and store.versions("cancelled") == []
        else:
            assert done.state == SUCCEEDED, done.error
            assert done.version == 1 and done.promoted
            best = next(t for t in done.trials if t.number == done.best_trial)
            assert best.state == COMPLETE
            hyper = store.open_version("cancelled", 1).manifest.training["hyperparameters"]
            assert hyper["learning_rate"] == pytest.approx(_params(best)["learning_rate"], rel=1e-6)
        assert not leftovers(empty_root)
    finally:
        server.stop()


def _train_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = [
        *("--task", "classification"),
        *("--train", str(FIXTURES / "sentiment_train.tsv")),
        *("--validation", str(FIXTURES / "sentiment_validation.tsv")),
    ]
    return subprocess.run(
        [sys.executable, "-m", "tuneserve.cli", "train", *base, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "spec", ["learning_rate=abc", "dropout=0:1", "batch_size=32:8", "learning_rate=1e-3", "freeze=0:2"]
)
def test_cli_bad_search_spec_is_a_usage_error(tmp_path: Path, spec: str) -> None:
    out = _train_cli("--output", str(tmp_path / "out"), "--trials", "2", "--search", spec)
    assert out.returncode == 2, out.stderr
    assert "--search" in out.stderr
    assert not (tmp_path / "out").exists()


def test_cli_search_on_a_server(empty_root: Path, tiny_base: Path, tmp_path: Path) -> None:
    server = ServerProcess(empty_root, "--intra-op-threads", "1")
    try:
        remote = ("--server", server.target, "--model", "cli-searched", "--base", str(tiny_base))
        fixed = ("--epochs", "2", "--max-length", "32", "--learning-rate", "1e-3", "--batch-size", "8")
        bad = _train_cli(*remote, *fixed, "--trials", "2", "--search", "batch_size=32:8")
        assert bad.returncode == 2 and "--search" in bad.stderr and "empty range" in bad.stderr
        assert (
            code_of(server.training.ListTrainingJobs, training_pb2.ListTrainingJobsRequest())
            == grpc.StatusCode.OK
        )
        assert not server.training.ListTrainingJobs(training_pb2.ListTrainingJobsRequest()).jobs

        out = _train_cli(
            *remote,
            *fixed,
            "--trials",
            "2",
            "--search",
            "learning_rate=5e-4:2e-3:log",
            "--no-prune",
            "--watch",
        )
        assert out.returncode == 0, out.stderr
        job = json.loads(out.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["promoted"]
        assert [t.get("number", 0) for t in job["trials"]] == [0, 1]  # proto JSON omits a 0
        assert all(set(t["hyperparameters"]) == {"learning_rate"} for t in job["trials"])
        assert any(line.startswith(f"*{job['best_trial']}") for line in out.stderr.splitlines())
    finally:
        server.stop()
