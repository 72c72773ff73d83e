"""Hyperparameter search inside one training run: Optuna's TPE sampler, trials one after another.

Each trial trains with its sampled hyperparameters (the rest fixed by the ``TrainConfig``) into a folder of
its own under ``OUTPUT/.trials/``. The per-epoch evaluation the trainer already does feeds a median pruner
(on by default): a trial whose primary validation metric at an epoch is below the median of the earlier
trials at that epoch stops there (never at its last epoch, whose result is complete anyway). The best
complete trial's checkpoint becomes ``OUTPUT`` (what export reads), with the search recorded in its
``training.json`` under ``"search"``; every other trial's files are deleted.

``search_timeout`` bounds the search: no trial starts after it (the running one finishes). A cancel stops the
current trial; with ``keep_best_on_cancel`` the best complete trial is kept (``SearchOutcome.cancelled``),
otherwise ``Cancelled`` propagates and nothing is kept. Used by ``tuneserve train --trials`` and by the
Train RPC's job (``tuneserve.pipeline.job``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from tuneserve.checkpoint import TRAINING_RECORD
from tuneserve.progress import CancelFn, Cancelled, Progress, ProgressFn, never, no_progress
from tuneserve.quality import primary_metric
from tuneserve.searchspace import Dimension
from tuneserve.trainer.tracking import Tracker
from tuneserve.trainer.train import TrainConfig, TrainResult

log = structlog.get_logger(__name__)

TRIALS_FOLDER = ".trials"
TrialFn = Callable[[dict[str, Any]], None]
TrainFn = Callable[[TrainConfig, ProgressFn, CancelFn], TrainResult]


@dataclass(frozen=True)
class SearchConfig:
    """What to search: ``trials`` trials over ``space``, within ``timeout_s`` seconds (None: no limit)."""

    trials: int
    space: dict[str, Dimension]
    timeout_s: float | None = None
    prune: bool = True
    keep_best_on_cancel: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "space": [d.as_dict() for d in self.space.values()],
            "timeout_s": self.timeout_s,
            "prune": self.prune,
            "keep_best_on_cancel": self.keep_best_on_cancel,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        dims = [Dimension.from_dict(d) for d in data["space"]]
        return cls(
            int(data["trials"]),
            {d.name: d for d in dims},
            data.get("timeout_s"),
            bool(data.get("prune", True)),
            bool(data.get("keep_best_on_cancel", False)),
        )


@dataclass
class SearchOutcome:
    result: TrainResult  # the best trial's, its output moved to the config's output
    summary: dict[str, Any]  # training.json["search"]
    cancelled: bool = False  # stopped by a cancel, the best complete trial kept
    trials: list[dict[str, Any]] = field(default_factory=list)


class SearchFailed(RuntimeError):
    """No trial of the search completed; the message lists what happened to each."""


class _Pruned(Exception):
    pass


def _train(config: TrainConfig, on_progress: ProgressFn, should_cancel: CancelFn) -> TrainResult:
    from tuneserve.trainer.train import train

    return train(config, on_progress=on_progress, should_cancel=should_cancel)


def search(
    config: TrainConfig,
    how: SearchConfig,
    on_progress: ProgressFn = no_progress,
    should_cancel: CancelFn = never,
    on_trial: TrialFn = lambda _: None,
    tracker: Tracker | None = None,
    train_fn: TrainFn = _train,
) -> SearchOutcome:
    """Run the search; the best complete trial's checkpoint in ``config.output``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tracker = tracker or Tracker()
    metric = primary_metric(config.task, config.multi_label)
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(10, max(1, how.trials // 2)))
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
        if how.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    output = Path(config.output)
    folder = output / TRIALS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], TrainResult] | None = None
    cancelled = False
    stopped = "trials"
    try:
        for _ in range(how.trials):
            if how.timeout_s and time.monotonic() - started >= how.timeout_s:
                stopped = "timeout"
                break
            if should_cancel():  # between trials
                if how.keep_best_on_cancel and best is not None:
                    cancelled, stopped = True, "cancelled"
                    break
                raise Cancelled("the search was cancelled")
            trial = study.ask()
            params = {name: _suggest(trial, dim) for name, dim in how.space.items()}
            record: dict[str, Any] = {
                "number": trial.number,
                "params": params,
                "state": "running",
                "value": None,
                "metrics": {},
                "history": [],
                "seconds": 0.0,
            }
            records.append(record)
            trial_config = replace(config, output=folder / f"trial-{trial.number}", **params)
            log.info("trial", number=trial.number, **params)
            on_trial(dict(record))
            tracker.start_trial(trial.number, params)
            trial_started = time.monotonic()

            def progress(
                p: Progress,
                trial: Any = trial,
                record: dict[str, Any] = record,
                epochs: float = trial_config.epochs,
            ) -> None:
                on_progress(p)
                tracker.progress(p)
                if p.stage != "evaluating" or metric not in p.metrics:
                    return
                epoch = round(p.epoch)
                record["history"].append({"epoch": epoch, "step": p.step, "train_loss": p.loss, **p.metrics})
                record["value"] = max(record["value"] or float("-inf"), p.metrics[metric])
                record["metrics"] = dict(p.metrics)
                trial.report(p.metrics[metric], step=epoch)
                last = p.epoch >= epochs - 1e-6
                if not last and trial.should_prune():
                    raise _Pruned

            try:
                result = train_fn(trial_config, progress, should_cancel)
            except _Pruned:
                record["state"] = "pruned"
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                shutil.rmtree(trial_config.output, ignore_errors=True)
            except Cancelled:
                record.update(state="failed", error="cancelled")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                shutil.rmtree(trial_config.output, ignore_errors=True)
                cancelled = True
            except Exception as exc:
                if not records[:-1]:  # the first trial: the data or the base model, not the hyperparameters
                    raise
                log.warning("trial failed", number=trial.number, error=str(exc), exc_info=True)
                record.update(state="failed", error=str(exc)[:500])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                shutil.rmtree(trial_config.output, ignore_errors=True)
            else:
                value = float(result.metrics[metric])
                record.update(state="complete", value=value, metrics=dict(result.metrics))
                study.tell(trial, value)
                if best is None or value > best[0]:
                    if best is not None:
                        shutil.rmtree(best[2].output, ignore_errors=True)
                    best = (value, record, result)
                else:
                    shutil.rmtree(trial_config.output, ignore_errors=True)
            record["seconds"] = round(time.monotonic() - trial_started, 2)
            tracker.end_trial(record["state"], record["value"])
            log.info("trial done", number=trial.number, state=record["state"], value=record["value"])
            on_trial(dict(record))
            if cancelled:
                if how.keep_best_on_cancel and best is not None:
                    stopped = "cancelled"
                    break
                raise Cancelled("the search was cancelled")
        if best is None:
            raise SearchFailed(
                f"no trial of the search completed ({', '.join(r['state'] for r in records) or 'none ran'}): "
                + "; ".join(f"trial {r['number']}: {r['error']}" for r in records if r.get("error"))
            )
        value, chosen, result = best
        _adopt(result.output, output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {
        "trials": [{k: v for k, v in r.items()} for r in records],
        "best_trial": chosen["number"],
        "objective": metric,
        "direction": "maximize",
        "best_value": value,
        "chosen": dict(chosen["params"]),
        "space": {d.name: d.spec for d in how.space.values()},
        "sampler": "TPE",
        "pruner": "median" if how.prune else "none",
        "timeout_s": how.timeout_s,
        "stopped": stopped,  # "trials", "timeout" or "cancelled"
        "seconds": round(time.monotonic() - started, 2),
    }
    record_path = output / TRAINING_RECORD
    training = json.loads(record_path.read_text())
    training["search"] = summary
    record_path.write_text(json.dumps(training, indent=2))
    return SearchOutcome(replace(result, output=output), summary, cancelled, records)


def _suggest(trial: Any, dim: Dimension) -> Any:
    if dim.choices:
        return trial.suggest_categorical(dim.name, list(dim.choices))
    if isinstance(dim.low, int) and isinstance(dim.high, int):
        return trial.suggest_int(dim.name, dim.low, dim.high, log=dim.log)
    return trial.suggest_float(dim.name, float(dim.low), float(dim.high), log=dim.log)  # type: ignore[arg-type]


def _adopt(trial_output: Path, output: Path) -> None:
    """Move the best trial's checkpoint files up into ``output`` (replacing what is there)."""
    for item in trial_output.iterdir():
        target = output / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(item), str(target))


def run(
    config: TrainConfig,
    how: SearchConfig | None,
    tracker: Tracker | None = None,
    *,
    name: str,
    tags: dict[str, str] | None = None,
    on_progress: ProgressFn = no_progress,
    should_cancel: CancelFn = never,
    on_trial: TrialFn = lambda _: None,
    train_fn: TrainFn = _train,
) -> SearchOutcome:
    """One training run, tracked: a search when ``how`` asks for trials, else one ``train``
    (``SearchOutcome.summary`` empty)."""
    tracker = tracker or Tracker()
    searched = set(how.space) if how else set()
    fixed = {k: v for k, v in asdict(config).items() if k not in searched and k not in _NOT_PARAMS}
    tracker.start(name, {**fixed, **_data_sizes(config)}, {"tuneserve.run": name, **(tags or {})})
    state = "failed"
    try:
        if how is not None and how.trials > 0:
            outcome = search(config, how, on_progress, should_cancel, on_trial, tracker, train_fn)
        else:
            tracker.start_trial(None, {})

            def progress(p: Progress) -> None:
                on_progress(p)
                tracker.progress(p)

            outcome = SearchOutcome(train_fn(config, progress, should_cancel), {})
        state = "complete"
    finally:
        summary: dict[str, Any] = {}
        if state == "complete" and outcome.summary:
            s = outcome.summary
            summary = {"best_trial": s["best_trial"], f"best_{s['objective']}": s["best_value"]}
            summary["chosen"] = json.dumps(s["chosen"])
        elif state == "complete":
            summary = {f"best_{k}": v for k, v in outcome.result.metrics.items()}
        tracker.end(state, summary)
    return outcome


_NOT_PARAMS = frozenset({"train", "validation", "output", "progress_bar"})


def _data_sizes(config: TrainConfig) -> dict[str, int]:
    from tuneserve import data as datasets

    sizes = {}
    for key in ("train", "validation"):
        try:
            examples = datasets.read_examples(
                config.task,
                Path(getattr(config, key)),
                text_column=config.text_column,
                label_column=config.label_column,
                multi_label=config.multi_label,
            )
        except Exception:  # the trainer reports bad data with its own error
            continue
        sizes[f"{key}_examples"] = len(examples)
    return sizes
