"""Lineage end to end: a tiny model trained through the CLI and exported carries, under the manifest's
``lineage``, its base weights' digest, its data's digests and row counts, the code, seed, device and world
size, and a search summary copied from training.json; editing any of it fails verification."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest

from helpers import FIXTURES
from tuneserve import data as datasets
from tuneserve.checkpoint import TRAINING_RECORD
from tuneserve.exporter.export import ExportConfig, export
from tuneserve.lineage import weights_revision
from tuneserve.localstore import LocalModelStore
from tuneserve.repository import IntegrityError, verify

SEARCH = {
    "trials": [
        {"number": 0, "params": {"learning_rate": 1e-3}, "value": 0.5, "state": "COMPLETE"},
        {"number": 1, "params": {"learning_rate": 3e-3}, "value": 0.75, "state": "COMPLETE"},
    ],
    "best_trial": 1,
    "objective": "accuracy",
    "chosen": {"learning_rate": 3e-3},
    "sampler": "TPESampler",
    "pruner": "MedianPruner",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_records_lineage_and_export_publishes_it_covered_by_the_digest(
    trained: dict[str, Path], tiny_base: Path, fresh_copy, tmp_path: Path
) -> None:
    checkpoint = fresh_copy(trained["classification"])
    record = json.loads((checkpoint / TRAINING_RECORD).read_text())
    record["search"] = SEARCH  # what a search run leaves in training.json
    (checkpoint / TRAINING_RECORD).write_text(json.dumps(record))

    root = tmp_path / "models"
    result = export(ExportConfig(checkpoint=checkpoint, model_root=root, name="lin", quantize="none"))
    lineage = result.manifest.lineage
    assert lineage is not None
    assert lineage.base_model.name == str(tiny_base) and lineage.base_model.source == "folder"
    assert lineage.base_model.revision == weights_revision(tiny_base) is not None
    assert lineage.base_model.package is None
    for key, name in (("train", "sentiment_train.tsv"), ("validation", "sentiment_validation.tsv")):
        rows = len(datasets.read_examples("classification", FIXTURES / name))
        assert lineage.data[key].sha256 == _sha(FIXTURES / name) and lineage.data[key].rows == rows
    assert lineage.tuneserve.version == metadata.version("tuneserve")
    assert (lineage.seed, lineage.device, lineage.world_size) == (42, "cpu", 1)
    assert lineage.search == SEARCH

    written = json.loads((result.path / "manifest.json").read_text())
    assert written["lineage"]["search"] == SEARCH and written["lineage"]["data"]["train"]["rows"] > 0
    assert LocalModelStore(root).open_version("lin").manifest.lineage == lineage

    # An edit of the lineage is an edit of the manifest: refused like any other.
    written["lineage"]["data"]["train"]["rows"] += 1
    (result.path / "manifest.json").write_text(json.dumps(written, indent=2))
    with pytest.raises(IntegrityError, match="changed after publishing"):
        verify(result.path)


def test_without_a_search_the_lineage_search_is_null(model_store: Path) -> None:
    version = LocalModelStore(model_store).open_version("tiny-ner")
    lineage = version.manifest.lineage
    assert lineage is not None and lineage.search is None
    assert json.loads((version.path / "manifest.json").read_text())["lineage"]["search"] is None
    assert lineage.data["validation"].sha256 == _sha(FIXTURES / "ner_validation.conll")
