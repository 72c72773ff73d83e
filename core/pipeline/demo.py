"""The default demo models: a sentiment classifier and an English NER model.

They are fine-tuned from the packaged all-MiniLM-L6-v2 on small synthetic data sets shipped in
``demo_data/`` (made by scripts/make_demo_data.py), in a few minutes on two CPU cores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from tuneserve.exporter.export import ExportConfig, export
from tuneserve.quality import primary_metric
from tuneserve.repository import ModelStore
from tuneserve.trainer.train import TrainConfig, train

DATA = Path(__file__).parent / "demo_data"

# name -> (task, training file, validation file, epochs, max length, learning rate)
DEMOS: dict[str, tuple[str, str, str, float, int, float]] = {
    "sentiment": ("classification", "sentiment/train.tsv", "sentiment/validation.tsv", 2, 64, 1e-4),
    "ner": ("ner", "ner/train.conll", "ner/validation.conll", 3, 64, 1e-4),
}


def build_demo_models(model_root: Path, force: bool = False) -> Iterator[str]:
    """Train and export each demo model that the store lacks; yield one line per model."""
    store = ModelStore(model_root)
    for name, (task, train_file, valid_file, epochs, max_length, lr) in DEMOS.items():
        serving = store.serving_version(name)
        if serving is not None and not force:
            yield f"{name}: version {serving} already at {store.root / name / str(serving)}"
            continue
        with tempfile.TemporaryDirectory(prefix=f"tuneserve-demo-{name}-") as tmp:
            config = TrainConfig(
                task=task,
                train=DATA / train_file,
                validation=DATA / valid_file,
                output=Path(tmp),
                epochs=epochs,
                max_length=max_length,
                learning_rate=lr,
                batch_size=32,
                seed=42,
            )
            train(config)
            result = export(ExportConfig(checkpoint=Path(tmp), model_root=model_root, name=name))
        if force:
            store.set_serving_version(name, result.version)
        metric = primary_metric(task)
        served = result.manifest.metrics.get("served", {}).get(metric, float("nan"))
        yield f"{name}: version {result.version} at {result.path} ({metric} {100 * served:.1f} on validation)"
