"""`tuneserve train --server`, `tuneserve jobs ...` and `tuneserve models ...` against a live server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from helpers import FIXTURES, last_json, run_cli

from .live import ServerProcess


def interrupted_watch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`tuneserve train ... --watch` interrupted by SIGINT (Ctrl-C) once its job is queued."""
    cmd = [sys.executable, "-m", "tuneserve.cli", "train", *map(str, args), "--watch"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    queued = proc.stderr.readline()  # "job ID queued for model M": the watch has begun
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, queued + err)


TINY = ("--epochs", "2", "--batch-size", "8", "--max-length", "32", "--learning-rate", "1e-3")


def test_retrain_promote_rollback_from_the_cli(tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    at = ("--server", server.target)
    try:
        empty = run_cli("jobs", "list", *at)
        assert json.loads(empty.stdout) == {"jobs": [], "next_page_token": ""} and "no jobs" in empty.stderr
        files = (
            "--train",
            FIXTURES / "sentiment_train.tsv",
            "--validation",
            FIXTURES / "sentiment_validation.tsv",
        )
        watched = run_cli(
            "train",
            *at,
            "--model",
            "cli-reviews",
            "--task",
            "classification",
            *files,
            "--base",
            tiny_base,
            *TINY,
            "--watch",
        )
        job = last_json(watched.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["version"] == 1 and job["promoted"]
        # Stage lines, each epoch once with its metric (no progress bar: stderr is not a terminal).
        assert watched.stderr.count("[training] epoch 1/") == 1 and "accuracy" in watched.stderr

        queued = last_json(
            run_cli(
                "train", *at, "--model", "cli-reviews", *files, *TINY, "--promotion-policy", "register-only"
            ).stdout
        )
        assert queued["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
        assert queued["base_model"] == str(tiny_base), "a retrained model keeps its base"
        done = last_json(run_cli("jobs", "watch", queued["id"], *at).stdout)
        assert done["state"] == "JOB_STATE_SUCCEEDED" and done["version"] == 2 and not done.get("promoted")

        listed = last_json(run_cli("jobs", "list", *at, "--model", "cli-reviews").stdout)
        assert [j["id"] for j in listed["jobs"]] == [queued["id"], job["id"]]
        assert last_json(run_cli("jobs", "get", job["id"], *at).stdout)["id"] == job["id"]

        promoted = last_json(run_cli("models", "promote", "cli-reviews", "2", *at).stdout)
        assert promoted["serving_version"] == 2
        rolled = last_json(run_cli("models", "rollback", "cli-reviews", *at).stdout)
        assert rolled["serving_version"] == 1
        models = last_json(run_cli("models", "list", *at).stdout)["models"]
        assert [m["name"] for m in models] == ["cli-reviews"]
        assert [v["version"] for v in models[0]["versions"]] == [1, 2]
        run_cli("models", "delete", "cli-reviews", "2", *at)
        got = last_json(run_cli("models", "get", "cli-reviews", *at).stdout)
        assert [v["version"] for v in got["versions"]] == [1]
        _check_lineage(got["versions"][0]["lineage"], tiny_base)
        text = run_cli("models", "get", "cli-reviews", *at, "--output", "text").stdout
        assert text.startswith("model cli-reviews (classification), serving version 1")
        assert f"base       {tiny_base} (folder) revision sha256:" in text and "search     none" in text

        refused = run_cli("models", "delete", "cli-reviews", "1", *at, check=False)
        assert refused.returncode != 0 and "FAILED_PRECONDITION" in refused.stderr

        # Ctrl-C stops watching, not the job, and says how to cancel it.
        long = ("--model", "cli-long", "--task", "classification", *files, "--base", tiny_base)
        interrupted = interrupted_watch(*at, *long, *TINY[2:], "--epochs", "100")
        assert interrupted.returncode == 130, interrupted.stderr
        job_id = interrupted.stderr.split()[1]
        cancel = f"tuneserve jobs cancel {job_id} --server {server.target}"
        assert f"job {job_id} goes on running" in interrupted.stderr and cancel in interrupted.stderr
        going = last_json(run_cli("jobs", "get", job_id, *at).stdout)
        assert going["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
        run_cli(*cancel.split()[1:])
    finally:
        server.stop()


def _check_lineage(lineage: dict, tiny_base: Path) -> None:
    """A server job's lineage: its base folder's weights, and the data as the job's trainer read it (the
    JSON Lines the server prepared from the TSV sent: the same rows, other bytes)."""
    from tuneserve import data as datasets
    from tuneserve.lineage import weights_revision

    base = lineage["base_model"]
    assert base == {"name": str(tiny_base), "revision": weights_revision(tiny_base), "source": "folder"}
    files = (("training_data", "sentiment_train.tsv"), ("validation_data", "sentiment_validation.tsv"))
    for key, name in files:
        rows = len(datasets.read_examples("classification", FIXTURES / name))
        assert lineage[key]["rows"] == rows
        assert len(lineage[key]["sha256"]) == 64 and lineage[key]["sha256"] != _sha(FIXTURES / name)
    assert lineage["seed"] == 42 and lineage["device"] == "cpu" and lineage["world_size"] == 1
    assert lineage["tuneserve_version"] and "search" not in lineage


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_job_makes_watch_fail(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    broken = tmp_path / "broken-base"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}')  # a base folder without weights
    server = ServerProcess(root, "--intra-op-threads", "1", env={"HF_HUB_OFFLINE": "1"})
    try:
        train = ["train", "--server", server.target, "--model", "offline", "--task", "classification"]
        train += ["--train", FIXTURES / "sentiment_train.tsv"]
        result = run_cli(*train, "--base", broken, "--watch", check=False)
        assert result.returncode == 1
        job = last_json(result.stdout)
        assert job["state"] == "JOB_STATE_FAILED" and job["error"]
        # A hub id while the server is offline is refused at once.
        offline = run_cli(*train, "--base", "no-such-org/no-such-model", check=False)
        assert (
            offline.returncode != 0 and "INVALID_ARGUMENT" in offline.stderr and "offline" in offline.stderr
        )
        bad = run_cli("train", "--server", server.target, "--model", "x", "--train-uri", "a.tsv", check=False)
        assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr
        assert (
            json.loads(run_cli("jobs", "list", "--server", server.target).stdout)["jobs"][0]["model"]
            == "offline"
        )
    finally:
        server.stop()


def test_predict_answers_by_the_models_task(server: ServerProcess) -> None:
    texts = ["a wonderful film", "dull"]
    classified = run_cli("predict", "--server", server.target, "--model", "tiny-sentiment", *texts)
    lines = [json.loads(line) for line in classified.stdout.splitlines()]
    assert [a["text"] for a in lines] == texts
    assert all(a["model"] == "tiny-sentiment" and a["version"] == 1 and len(a["labels"]) == 2 for a in lines)
    assert lines[0]["labels"][0]["score"] >= lines[0]["labels"][1]["score"]

    # No TEXT: the lines of stdin (blank ones skipped); the server from TUNESERVE_SERVER.
    text = "Zoë met Angela Merkel in Zürich."
    stdin = f"{text}\n\nNew York\n"
    env = {"TUNESERVE_SERVER": server.target, "TUNESERVE_MODEL": "tiny-ner"}
    found = run_cli("predict", "--texts-per-call", "1", env=env, input=stdin)
    answers = [json.loads(line) for line in found.stdout.splitlines()]
    assert [a["text"] for a in answers] == [text, "New York"]
    assert all("entities" in a and "labels" not in a for a in answers)
    assert all(text[e["start"] : e["end"]] == e["text"] for e in answers[0]["entities"])

    unknown = run_cli("predict", "--server", server.target, "--model", "nope", "x", check=False)
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr and not unknown.stdout
