"""Fine-tuning on a tiny local BERT: checkpoints, records, determinism, freezing, progress, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import FIXTURES, last_json, run_cli
from tuneserve.progress import Cancelled, Progress
from tuneserve.trainer.train import BaseModelError, TrainConfig, resolve_base, train


def _config(tiny_base: Path, out: Path, **kw) -> TrainConfig:
    defaults = dict(
        task="classification",
        train=FIXTURES / "sentiment_train.tsv",
        validation=FIXTURES / "sentiment_validation.tsv",
        output=out,
        base=str(tiny_base),
        epochs=2,
        batch_size=8,
        max_length=32,
        learning_rate=1e-3,
        progress_bar=False,
    )
    return TrainConfig(**{**defaults, **kw})


def test_cli_checkpoint_has_model_records_and_curve(trained: dict[str, Path]) -> None:
    for task, folder in trained.items():
        record = json.loads((folder / "training.json").read_text())
        assert record["task"] == task
        assert record["hyperparameters"]["epochs"] == 2
        assert record["freeze"] == "none"
        history = json.loads((folder / "metrics.json").read_text())["history"]
        assert [h["epoch"] for h in history] == [1.0, 2.0]
        assert (folder / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
        assert not (folder / ".checkpoints").exists()
    ner = json.loads((trained["ner"] / "training.json").read_text())
    assert ner["labels"][0] == "O" and "B-PER" in ner["labels"]
    assert ner["pretokenizer"] == "tokenizer"
    assert 0 <= ner["metrics"]["entity_f1"] <= 1


def test_same_seed_same_metrics(tiny_base: Path, tmp_path: Path) -> None:
    a = train(_config(tiny_base, tmp_path / "a"))
    b = train(_config(tiny_base, tmp_path / "b"))
    assert a.history == b.history
    c = train(_config(tiny_base, tmp_path / "c", seed=7))
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


def test_freeze_encoder_trains_only_the_head(tiny_base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    train(_config(tiny_base, tmp_path / "frozen", freeze="encoder"))
    base = load_file(tiny_base / "model.safetensors")
    tuned = load_file(tmp_path / "frozen" / "model.safetensors")
    key = "encoder.layer.0.attention.self.query.weight"
    assert (base[key] == tuned[f"bert.{key}"]).all()
    record = json.loads((tmp_path / "frozen" / "training.json").read_text())
    assert record["freeze"] == "encoder"


def test_freeze_bottom_layers(tiny_base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    train(_config(tiny_base, tmp_path / "f1", freeze="1"))
    base = load_file(tiny_base / "model.safetensors")
    tuned = load_file(tmp_path / "f1" / "model.safetensors")
    k0, k1 = "encoder.layer.0.output.dense.weight", "encoder.layer.1.output.dense.weight"
    assert (base[k0] == tuned[f"bert.{k0}"]).all()
    assert not (base[k1] == tuned[f"bert.{k1}"]).all()
    with pytest.raises(ValueError, match="only 2 layers"):
        train(_config(tiny_base, tmp_path / "f9", freeze="9"))


def test_multi_label_classification(tiny_base: Path, tmp_path: Path) -> None:
    result = train(
        _config(
            tiny_base,
            tmp_path / "ml",
            train=FIXTURES / "genres_train.jsonl",
            validation=FIXTURES / "genres_validation.jsonl",
        )
    )
    assert result.labels == ["romance", "thriller"]
    assert "micro_f1" in result.metrics
    assert json.loads((tmp_path / "ml" / "training.json").read_text())["multi_label"] is True


def test_progress_reports_and_cancel(tiny_base: Path, tmp_path: Path) -> None:
    seen: list[Progress] = []
    train(_config(tiny_base, tmp_path / "p", epochs=1), on_progress=seen.append)
    stages = {p.stage for p in seen}
    assert stages == {"training", "evaluating"}
    assert seen[-1].metrics["accuracy"] >= 0 and seen[0].total == 6

    steps: list[int] = []
    with pytest.raises(Cancelled):
        train(
            _config(tiny_base, tmp_path / "x"),
            on_progress=lambda p: steps.append(p.step),
            should_cancel=lambda: len(steps) >= 2,
        )
    assert max(steps) == 2


def test_hub_id_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError, match=r"not a local folder.*offline"):
        resolve_base("some-org/not-here")
    with pytest.raises(BaseModelError, match="does not exist"):
        resolve_base("./missing-folder")


def test_cli_reports_data_errors_with_file_and_line(tiny_base: Path, tmp_path: Path) -> None:
    bad = tmp_path / "valid.tsv"
    bad.write_text("text\tlabel\ngood\tpositive\nodd\tneutral\n")
    result = run_cli(
        "train",
        "--task",
        "classification",
        "--train",
        FIXTURES / "sentiment_train.tsv",
        "--validation",
        bad,
        "--output",
        tmp_path / "o",
        "--base",
        tiny_base,
        check=False,
    )
    assert result.returncode != 0
    assert f"{bad}:3:" in result.stderr and "neutral" in result.stderr


def test_cli_refuses_a_single_label_before_training(tiny_base: Path, tmp_path: Path) -> None:
    """One label would 'reach accuracy 1.0' by predicting it: refused, with the file, before any training."""
    one = tmp_path / "one.tsv"
    one.write_text("text\tlabel\ngood\tpositive\nfine\tpositive\n")
    tagged = tmp_path / "untagged.jsonl"
    tagged.write_text('{"tokens": ["no", "entities"], "tags": ["O", "O"]}\n')
    for task, data, needle in (
        ("classification", one, "a single label ('positive')"),
        ("ner", tagged, "no entities"),
    ):
        result = run_cli(
            "train",
            "--task",
            task,
            "--train",
            data,
            "--validation",
            data,
            "--output",
            tmp_path / task,
            "--base",
            tiny_base,
            check=False,
        )
        assert result.returncode != 0 and f"{data}: {needle}" in result.stderr, result.stderr
        assert not (tmp_path / task / "model.safetensors").exists()


def test_cli_flags_read_environment(tiny_base: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "TUNESERVE_TASK": "classification",
        "TUNESERVE_EPOCHS": "1",
        "TUNESERVE_TRAIN": str(FIXTURES / "sentiment_train.tsv"),
        "TUNESERVE_VALIDATION": str(FIXTURES / "sentiment_validation.tsv"),
        "TUNESERVE_OUTPUT": str(tmp_path / "env"),
        "TUNESERVE_BASE": str(tiny_base),
        "TUNESERVE_MAX_LENGTH": "16",
        "TUNESERVE_PRETOKENIZER": "whitespace",
    }
    out = subprocess.run(
        [sys.executable, "-m", "tuneserve.cli", "train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert last_json(out.stdout)["output"] == str(tmp_path / "env")
    record = json.loads((tmp_path / "env" / "training.json").read_text())
    assert record["max_length"] == 16 and record["hyperparameters"]["epochs"] == 1
    assert record["pretokenizer"] == "whitespace"
