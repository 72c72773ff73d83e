"""The search loop (trainer/search.py) with real Optuna and a stand-in for the trainer whose validation
metric is a known function of the hyperparameters: pruning, which trial is kept, what is deleted, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneserve.progress import Cancelled, Progress
from tuneserve.searchspace import space
from tuneserve.trainer.search import SearchConfig, search
from tuneserve.trainer.train import TrainConfig, TrainResult


def _config(tmp_path: Path) -> TrainConfig:
    return TrainConfig(
        task="classification",
        train=tmp_path / "t.tsv",
        validation=tmp_path / "v.tsv",
        output=tmp_path / "out",
    )


def _fake_train(config: TrainConfig, on_progress, should_cancel) -> TrainResult:
    """Accuracy grows with the learning rate (up to 1), a little each epoch; writes a checkpoint folder."""
    out = Path(config.output)
    out.mkdir(parents=True)
    history = []
    for epoch in range(1, int(config.epochs) + 1):
        if should_cancel():
            raise Cancelled("cancelled")
        accuracy = min(1.0, config.learning_rate * 100) * (0.5 + 0.1 * epoch)
        history.append({"epoch": epoch, "accuracy": accuracy})
        on_progress(
            Progress("evaluating", epoch, int(config.epochs), float(epoch), 0.5, {"accuracy": accuracy})
        )
    (out / "training.json").write_text(
        json.dumps({"hyperparameters": {"learning_rate": config.learning_rate}})
    )
    best = max(history, key=lambda h: h["accuracy"])
    return TrainResult(out, config.task, ["a", "b"], {"accuracy": best["accuracy"]}, history)


def test_pruned_trials_stop_early_and_only_the_best_is_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    how = SearchConfig(trials=8, space=space(["learning_rate=1e-5:1e-2:log", "epochs=3:4"]))
    trials: list[dict] = []
    outcome = search(config, how, on_trial=trials.append, train_fn=_fake_train)
    summary = outcome.summary
    records = summary["trials"]
    assert len(records) == 8 and summary["sampler"] == "TPE" and summary["pruner"] == "median"
    pruned = [t for t in records if t["state"] == "pruned"]
    assert pruned, records
    for t in pruned:  # stopped before their last epoch, below the earlier trials' median there
        assert len(t["history"]) < t["params"]["epochs"]
    complete = [t for t in records if t["state"] == "complete"]
    best = max(complete, key=lambda t: t["value"])
    assert summary["best_trial"] == best["number"] and summary["chosen"] == best["params"]
    assert outcome.result.metrics["accuracy"] == best["value"]
    # The best trial's checkpoint is the output, with the search in its training.json; nothing else is left.
    record = json.loads((config.output / "training.json").read_text())
    assert record["hyperparameters"]["learning_rate"] == best["params"]["learning_rate"]
    assert record["search"]["best_trial"] == best["number"]
    assert sorted(p.name for p in config.output.iterdir()) == ["training.json"]
    # Each trial is reported when it starts and when it ends.
    assert [t["state"] for t in trials[:2]] == ["running", records[0]["state"]]


def test_no_pruning_when_asked(tmp_path: Path) -> None:
    how = SearchConfig(trials=5, space=space(["learning_rate=1e-5:1e-2:log"]), prune=False)
    outcome = search(_config(tmp_path), how, train_fn=_fake_train)
    assert {t["state"] for t in outcome.summary["trials"]} == {"complete"}
    assert outcome.summary["pruner"] == "none"


@pytest.mark.parametrize("keep_best", [True, False])
def test_cancel_in_the_second_trial(tmp_path: Path, keep_best: bool) -> None:
    config = _config(tmp_path)
    how = SearchConfig(trials=5, space=space(["learning_rate=1e-4:1e-2:log"]), keep_best_on_cancel=keep_best)
    started: list[int] = []

    def on_trial(record: dict) -> None:
        if record["state"] == "running":
            started.append(record["number"])

    def cancel() -> bool:
        return len(started) >= 2

    if not keep_best:
        with pytest.raises(Cancelled):
            search(config, how, should_cancel=cancel, on_trial=on_trial, train_fn=_fake_train)
        assert not (config.output / "training.json").exists()
        assert not (config.output / ".trials").exists()
        return
    outcome = search(config, how, should_cancel=cancel, on_trial=on_trial, train_fn=_fake_train)
    assert outcome.cancelled and outcome.summary["stopped"] == "cancelled"
    assert [t["state"] for t in outcome.summary["trials"]] == ["complete", "failed"]
    assert outcome.summary["trials"][1]["error"] == "cancelled"
    assert outcome.summary["best_trial"] == 0
    assert json.loads((config.output / "training.json").read_text())["search"]["best_trial"] == 0
