"""Experiment tracking of a training run (``--report-to``, ``TrainRequest.report_to``): MLflow or TensorBoard.

One run per job (or local ``tuneserve train``): its params are the fixed hyperparameters, the task, the base
model and the data sizes; its tags the job id and model name. With a search, every trial is a nested run
(MLflow) or its own folder (TensorBoard) holding the trial's hyperparameters, its validation metrics per
epoch (step = epoch) and its training-loss curve (step = optimizer step). Without a search the one run
holds the metrics and the curve.

MLflow is configured by its own variables only (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``, ...).
TensorBoard writes event files under a log folder (``trial-N/`` per trial, else ``run/``).

The libraries come with the ``tracking`` extra and are imported only when asked for; ``check`` says
(``TrackingUnavailable``) when the extra is not installed, so the CLI and the Train RPC refuse at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneserve.progress import Progress
from tuneserve.tracking import REPORT_TO, TrackingUnavailable, check

__all__ = ["REPORT_TO", "Tracker", "TrackingUnavailable", "check", "open_tracker"]


class Tracker:
    """Does nothing: the base of the trackers, and the tracker of ``none``."""

    def start(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        """The job's run."""

    def start_trial(self, number: int | None, params: dict[str, Any]) -> None:
        """A trial's run (``number`` None: no search, the job's run itself)."""

    def progress(self, p: Progress) -> None:
        """A progress report of the current trial: its epoch metrics and its loss curve."""

    def end_trial(self, state: str, value: float | None) -> None:
        """The trial ended: "complete", "pruned" or "failed"."""

    def end(self, state: str, summary: dict[str, Any]) -> None:
        """The job's run ended: "complete" or "failed"; ``summary``: what to record of the outcome."""


class _Curve:
    """Which progress reports are new points: epoch metrics once per epoch, the loss once per new value."""

    def __init__(self) -> None:
        self.last_loss: tuple[int, float] | None = None

    def loss(self, p: Progress) -> tuple[int, float] | None:
        if p.stage != "training" or p.loss is None:
            return None
        if self.last_loss is not None and (self.last_loss[1] == p.loss or self.last_loss[0] == p.step):
            return None
        self.last_loss = (p.step, p.loss)
        return self.last_loss


class MlflowTracker(Tracker):
    """A parent run per job, a nested run per trial (MLflow's fluent API, configured by MLFLOW_*)."""

    def __init__(self) -> None:
        import mlflow

        self.mlflow = mlflow
        self.nested = False
        self.curve = _Curve()

    def start(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        self.mlflow.start_run(run_name=name, tags=tags)
        self.mlflow.log_params(_flat(params))

    def start_trial(self, number: int | None, params: dict[str, Any]) -> None:
        self.curve = _Curve()
        if number is None:
            self.mlflow.log_params(_flat(params))
            return
        self.mlflow.start_run(run_name=f"trial-{number}", nested=True, tags={"tuneserve.trial": str(number)})
        self.mlflow.log_params(_flat(params))
        self.nested = True

    def progress(self, p: Progress) -> None:
        if p.stage == "evaluating" and p.metrics:
            self.mlflow.log_metrics({k: float(v) for k, v in p.metrics.items()}, step=round(p.epoch))
        elif (point := self.curve.loss(p)) is not None:
            self.mlflow.log_metric("train_loss", point[1], step=point[0])

    def end_trial(self, state: str, value: float | None) -> None:
        if not self.nested:
            return
        self.mlflow.set_tag("tuneserve.trial_state", state)
        if value is not None:
            self.mlflow.log_metric("objective", value)
        self.mlflow.end_run(status={"complete": "FINISHED", "pruned": "KILLED"}.get(state, "FAILED"))
        self.nested = False

    def end(self, state: str, summary: dict[str, Any]) -> None:
        if self.nested:
            self.end_trial("failed", None)
        for key, value in summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.mlflow.log_metric(key, float(value))
            else:
                self.mlflow.set_tag(f"tuneserve.{key}", str(value)[:5000])
        self.mlflow.end_run(status="FINISHED" if state == "complete" else "FAILED")


class TensorBoardTracker(Tracker):
    """Scalars under ``log_dir``: ``trial-N/`` per trial, ``run/`` without a search."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self.curve = _Curve()
        self.params: dict[str, Any] = {}

    def start(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        self.params = {**_flat(params), **tags}

    def start_trial(self, number: int | None, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.curve = _Curve()
        self.writer = SummaryWriter(str(self.log_dir / ("run" if number is None else f"trial-{number}")))
        text = "\n".join(f"{k}: {v}" for k, v in {**self.params, **_flat(params)}.items())
        self.writer.add_text("hyperparameters", text)

    def progress(self, p: Progress) -> None:
        if self.writer is None:
            return
        if p.stage == "evaluating" and p.metrics:
            for key, value in p.metrics.items():
                self.writer.add_scalar(f"validation/{key}", float(value), round(p.epoch))
        elif (point := self.curve.loss(p)) is not None:
            self.writer.add_scalar("train/loss", point[1], point[0])

    def end_trial(self, state: str, value: float | None) -> None:
        if self.writer is not None:
            if value is not None:
                self.writer.add_scalar("objective", value, 0)
            self.writer.close()
            self.writer = None

    def end(self, state: str, summary: dict[str, Any]) -> None:
        self.end_trial(state, None)


def open_tracker(kind: str, log_dir: Path | None = None) -> Tracker:
    """The tracker of ``kind`` (``check`` it first); TensorBoard needs ``log_dir``."""
    check(kind)
    if kind == "mlflow":
        return MlflowTracker()
    if kind == "tensorboard":
        if log_dir is None:
            raise ValueError("report_to tensorboard needs a log folder")
        return TensorBoardTracker(log_dir)
    return Tracker()


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items() if v is not None}
