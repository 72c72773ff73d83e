"""Slow: fine-tune the default base on slices of the real data in ../shared/data (opt-in: -m slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneserve.exporter.export import ExportConfig, export
from tuneserve.trainer.train import TrainConfig, train

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DATA.is_dir(), reason=f"no real data at {DATA}")]


def _head(src: Path, dst: Path, lines: int) -> Path:
    with src.open(encoding="utf-8") as f:
        dst.write_text("".join(f.readlines()[:lines]), encoding="utf-8")
    return dst


def test_sst2_slice_beats_chance(tmp_path: Path) -> None:
    train_file = _head(DATA / "sst2" / "train.tsv", tmp_path / "train.tsv", 2001)
    dev_file = _head(DATA / "sst2" / "dev.tsv", tmp_path / "dev.tsv", 401)
    result = train(
        TrainConfig(
            task="classification",
            train=train_file,
            validation=dev_file,
            output=tmp_path / "ckpt",
            text_column="sentence",
            epochs=1,
            max_length=64,
            progress_bar=False,
        )
    )
    assert result.metrics["accuracy"] > 0.70  # chance is about 0.5
    exported = export(ExportConfig(checkpoint=tmp_path / "ckpt", model_root=tmp_path / "models", name="sst2"))
    assert exported.manifest.metrics["served"]["accuracy"] > 0.70


def test_conll_slice_beats_chance(tmp_path: Path) -> None:
    text = (DATA / "conll2003" / "train.txt").read_text(encoding="utf-8")
    (tmp_path / "train.txt").write_text("\n\n".join(text.split("\n\n")[:1500]) + "\n", encoding="utf-8")
    dev = (DATA / "conll2003" / "dev.txt").read_text(encoding="utf-8")
    (tmp_path / "dev.txt").write_text("\n\n".join(dev.split("\n\n")[:300]) + "\n", encoding="utf-8")
    result = train(
        TrainConfig(
            task="ner",
            train=tmp_path / "train.txt",
            validation=tmp_path / "dev.txt",
            output=tmp_path / "ckpt",
            epochs=2,
            learning_rate=1e-4,
            progress_bar=False,
        )
    )
    assert result.metrics["entity_f1"] > 0.40  # an untrained head scores near 0
