"""The default demo models: a sentiment classifier and an English NER model.

They are fine-tuned from the packaged all-MiniLM-L6-v2 on small synthetic data sets shipped in
``demo_data/`` (made by scripts/make_demo_data.py), trained for what a demo needs and no more: short
examples, few epochs, a high learning rate and the lower layers frozen, so that both build in about two
minutes of CPU time. Every run is seeded, so the same machine builds the same models.

Each step is logged (``demo`` events: which model, which step, epoch k/n), one JSON object per line
when stderr is not a terminal.
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from tuneserve.exporter.export import ExportConfig, export
from tuneserve.progress import Progress
from tuneserve.quality import primary_metric
from tuneserve.repository import open_store
from tuneserve.trainer.train import TrainConfig, train

log = structlog.get_logger(__name__)

DATA = Path(__file__).parent / "demo_data"
SEED = 42


@dataclass(frozen=True)
class DemoModel:
    """How one demo model is trained: its data (under ``DATA``) and hyperparameters."""

    task: str
    train: str
    validation: str
    epochs: int
    max_length: int
    learning_rate: float
    batch_size: int
    freeze: str  # see TrainConfig.freeze: the embeddings and this many lower layers stay as packaged


DEMOS: dict[str, DemoModel] = {
    "sentiment": DemoModel(
        "classification", "sentiment/train.tsv", "sentiment/validation.tsv", 2, 48, 5e-4, 32, "4"
    ),
    "ner": DemoModel("ner", "ner/train.conll", "ner/validation.conll", 3, 48, 5e-4, 32, "2"),
}


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _StepLog:
    """Turns training and export progress into one ``demo`` log line per step of one model."""

    def __init__(self, name: str, epochs: int) -> None:
        self.name, self.epochs = name, epochs
        self.last: tuple[str, str | int] | None = None

    def __call__(self, p: Progress) -> None:
        if p.stage == "training":
            epoch = min(self.epochs, math.floor(p.epoch - 1e-9) + 1) if p.total else 1
            self._once("training", epoch, epoch=f"{epoch}/{self.epochs}", steps=p.total)
        elif p.stage == "evaluating":
            epoch = round(p.epoch)
            self._once("evaluated", epoch, epoch=f"{epoch}/{self.epochs}", **p.metrics)
        else:  # exporting, quantizing, validating
            step = {"validating": "measuring"}.get(p.stage, p.stage)
            self._once(step, p.message, detail=p.message)

    def _once(self, step: str, key: str | int, **fields: object) -> None:
        if self.last == (step, key):
            return
        self.last = (step, key)
        log.info("demo", model=self.name, step=step, **fields)


def _freeze(base: str | None, layers: str) -> str:
    """``layers`` to freeze, or all of a smaller ``base``'s layers (the head still trains)."""
    if base is None:
        return layers
    from transformers import AutoConfig

    return str(min(int(layers), AutoConfig.from_pretrained(base).num_hidden_layers))


def build_demo_models(model_root: str | Path, force: bool = False, base: str | None = None) -> Iterator[str]:
    """Train and export each demo model that the store lacks; yield one line per model.

    ``base`` (a local folder) replaces the packaged all-MiniLM-L6-v2, e.g. for a quicker smoke test.
    """
    store = open_store(model_root)
    todo = [name for name in DEMOS if force or store.serving_version(name) is None]
    for name in DEMOS:
        if name not in todo:
            serving = store.serving_version(name)
            log.info("demo", model=name, step="present", version=serving)
            yield f"{name}: version {serving} already at {store.url}/{name}/{serving}"
    for index, name in enumerate(todo, 1):
        spec = DEMOS[name]
        started, cpu = time.monotonic(), _cpu_seconds()
        log.info(
            "demo",
            model=name,
            step="building",
            models=f"{index}/{len(todo)}",
            task=spec.task,
            data=str(DATA / spec.train),
            epochs=spec.epochs,
        )
        progress = _StepLog(name, spec.epochs)
        with tempfile.TemporaryDirectory(prefix=f"tuneserve-demo-{name}-") as tmp:
            config = TrainConfig(
                task=spec.task,  # type: ignore[arg-type]
                train=DATA / spec.train,
                validation=DATA / spec.validation,
                output=Path(tmp),
                base=base,
                epochs=spec.epochs,
                max_length=spec.max_length,
                learning_rate=spec.learning_rate,
                batch_size=spec.batch_size,
                freeze=_freeze(base, spec.freeze),
                early_stopping_patience=0,
                seed=SEED,
                progress_bar=sys.stderr.isatty(),
            )
            train(config, on_progress=progress)
            result = export(
                ExportConfig(checkpoint=Path(tmp), model_root=model_root, name=name), on_progress=progress
            )
        if force:
            store.set_serving_version(name, result.version)
        metric = primary_metric(spec.task)
        served = result.manifest.metrics.get("served", {}).get(metric, float("nan"))
        log.info(
            "demo",
            model=name,
            step="done",
            version=result.version,
            path=str(result.path),
            **{metric: served},
            seconds=round(time.monotonic() - started, 1),
            cpu_seconds=round(_cpu_seconds() - cpu, 1),
        )
        yield f"{name}: version {result.version} at {result.path} ({metric} {100 * served:.1f} on validation)"
