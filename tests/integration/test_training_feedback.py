"""What a retraining user sees: per-epoch metrics, the best epoch and the gate's reason in `--watch` and
`jobs get`; a first version below the minimum metric is registered, not served; a new label set needs
`--replace-labels`; the README's grpcurl Train example works as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from google.protobuf import json_format

from helpers import FIXTURES, last_json, run_cli
from tuneserve import data as datasets
from tuneserve.v1 import training_pb2

from .live import ServerProcess
from .training import wait_job

README = Path(__file__).parents[2] / "README.md"
TINY = (
    "--batch-size",
    "8",
    "--max-length",
    "32",
    "--learning-rate",
    "1e-3",
    "--early-stopping-patience",
    "0",
)


def _tsv(path: Path, rename: dict[str, str]) -> Path:
    """The sentiment training fixture with labels renamed (``rename``: old -> new)."""
    rows = ["text\tlabel"]
    for ex in datasets.read_classification(FIXTURES / "sentiment_train.tsv"):
        rows.append(f"{ex.text}\t{rename.get(ex.labels[0], ex.labels[0])}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_watch_shows_each_epoch_once_and_the_gate_decides(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1", "--minimum-metric", "0.99")
    at = ("--server", server.target)
    try:
        flipped = _tsv(tmp_path / "flipped.tsv", {"positive": "negative", "negative": "positive"})
        train = ["train", *at, "--model", "reviews", "--task", "classification", "--base", tiny_base, *TINY]
        watched = run_cli(
            *train,
            "--train",
            flipped,
            "--validation",
            FIXTURES / "sentiment_validation.tsv",
            "--epochs",
            "3",
            "--watch",
        )
        job = last_json(watched.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["version"] == 1
        assert not job.get("promoted"), "below the server's minimum metric: registered, not served"
        assert "registered, not served" in job["message"] and "< minimum 0.9900" in job["message"]
        assert [e["epoch"] for e in job["epoch_metrics"]] == [1, 2, 3]
        assert all("accuracy" in e["metrics"] for e in job["epoch_metrics"])
        best = max(job["epoch_metrics"], key=lambda e: e["metrics"]["accuracy"])
        assert job["best_epoch"] == best["epoch"]
        for epoch in (1, 2, 3):
            lines = [line for line in watched.stderr.splitlines() if f"epoch {epoch}/3: accuracy" in line]
            assert len(lines) == 1, watched.stderr  # once per change, with the metric
        assert "evaluated" not in watched.stderr
        assert watched.stderr.count("registered, not served") == 1
        assert (
            last_json(run_cli("jobs", "get", job["id"], *at).stdout)["epoch_metrics"] == job["epoch_metrics"]
        )
        model = last_json(run_cli("models", "get", "reviews", *at).stdout)
        assert not model.get("serving_version")

        renamed = _tsv(tmp_path / "renamed.tsv", {"positive": "good", "negative": "bad"})
        refused = run_cli(*train, "--train", renamed, check=False)
        assert refused.returncode != 0 and "INVALID_ARGUMENT" in refused.stderr
        assert "new 'bad', 'good'" in refused.stderr

        replaced = run_cli(
            *train,
            "--train",
            renamed,
            "--replace-labels",
            "--minimum-metric",
            "0",
            "--epochs",
            "2",
            "--watch",
        )
        job = last_json(replaced.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["version"] == 2 and job["promoted"]
        assert "serves" in job["message"] and ">= minimum 0.0000" in job["message"]
        model = last_json(run_cli("models", "get", "reviews", *at).stdout)
        assert model["serving_version"] == 2
        assert {"good", "bad"} == set(model["versions"][-1]["labels"])
    finally:
        server.stop()


def _readme_train_json() -> str:
    """The -d payload of the README's grpcurl Train example."""
    text = README.read_text()
    found = re.search(
        r"grpcurl -plaintext -d '([^']*)' localhost:50051 tuneserve\.v1\.TrainingService/Train\b", text
    )
    assert found, "the README has a grpcurl Train example"
    return found.group(1)


def test_readme_grpcurl_train_example(tmp_path: Path) -> None:
    """The example (no validation data, the packaged base) trains, holds out one of each label, and serves.
    grpcurl itself runs it when installed; otherwise its JSON goes through protobuf's JSON mapping, as
    grpcurl sends it."""
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    try:
        payload = _readme_train_json()
        if shutil.which("grpcurl"):
            out = subprocess.run(
                ["grpcurl", "-plaintext", "-d", payload, server.target, "tuneserve.v1.TrainingService/Train"],
                capture_output=True,
                text=True,
                check=True,
            )
            job_id = json.loads(out.stdout)["job"]["id"]
        else:
            request = json_format.Parse(payload, training_pb2.TrainRequest())
            job_id = server.training.Train(request).job.id
        done = wait_job(server, job_id, timeout=600)
        assert done.state == training_pb2.JOB_STATE_SUCCEEDED, done.error
        assert done.promoted and done.version == 1, done.message
        assert len(done.epoch_metrics) >= 1 and done.best_epoch >= 1
        labels = {
            ex["labels"][0]
            for ex in json.loads(payload)["training_data"]["classification_examples"]["examples"]
        }
        assert len(labels) == 2, "the example trains a classifier"
    finally:
        server.stop()
