"""The model store: atomic publish, serving record, checksums, version numbering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneserve.repository import (
    IntegrityError,
    Manifest,
    ModelNotFoundError,
    ModelStore,
    QuantizationInfo,
    StoreError,
)


def _manifest() -> Manifest:
    q = QuantizationInfo(requested="none", served="none")
    return Manifest(
        name="m",
        task="classification",
        labels=["a", "b"],
        max_length=16,
        base_model="tiny",
        onnx_file="model.onnx",
        quantization=q,
    )


def _publish(store: ModelStore, name: str = "m", content: bytes = b"onnx") -> int:
    with store.staging(name) as staged:
        (staged / "model.onnx").write_bytes(content)
        (staged / "sub").mkdir()
        (staged / "sub" / "x.txt").write_text("x")
        return store.publish(name, staged, _manifest())


def test_publish_numbers_versions_and_serves_the_first(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert _publish(store) == 1
    assert _publish(store) == 2
    assert store.serving_version("m") == 1
    version = store.open_version("m")
    assert version.manifest.version == 1
    assert set(version.manifest.files) == {"model.onnx", "sub/x.txt"}
    assert not list((tmp_path / "m").glob(".tmp-*"))


def test_manifest_without_pretokenizer_keeps_the_tokenizers_words(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    version = _publish(store)
    path = store.root / "m" / str(version) / "manifest.json"
    assert json.loads(path.read_text())["pretokenizer"] == "tokenizer"
    older = _manifest().model_dump(mode="json")
    del older["pretokenizer"]  # written before the field existed
    assert Manifest.model_validate(older).pretokenizer == "tokenizer"
    assert Manifest.model_validate({**older, "pretokenizer": "whitespace"}).pretokenizer == "whitespace"
    with pytest.raises(ValueError, match="pretokenizer"):
        Manifest.model_validate({**older, "pretokenizer": "punctuation"})


def test_deleted_version_numbers_are_not_reused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store), _publish(store)
    store.delete_version("m", 2)
    assert store.versions("m") == [1]
    assert _publish(store) == 3


def test_serving_version_cannot_be_deleted(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    with pytest.raises(StoreError, match="is serving"):
        store.delete_version("m", 1)


def test_set_serving_version_is_atomic_and_checked(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store), _publish(store)
    store.set_serving_version("m", 2)
    assert json.loads((tmp_path / "m" / "serving.json").read_text()) == {"version": 2}
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        store.set_serving_version("m", 7)
    assert store.serving_version("m") == 2


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match=r"checksum mismatch for model\.onnx"):
        store.open_version("m", 1)


def test_torn_folder_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / "1" / "sub" / "x.txt").unlink()
    with pytest.raises(IntegrityError, match=r"sub/x.txt is missing"):
        store.open_version("m", 1)
    (tmp_path / "m" / "1" / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="not a complete model version"):
        store.open_version("m", 1)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(RuntimeError), store.staging("m") as staged:
        (staged / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert store.versions("m") == []
    assert not list((tmp_path / "m").glob(".tmp-*"))


def test_clean_removes_leftovers_of_killed_writers(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / ".tmp-dead").mkdir()
    assert [p.name for p in store.clean()] == [".tmp-dead"]
    assert store.versions("m") == [1]


def test_bad_names_and_unknown_models(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(StoreError, match="invalid model name"), store.staging("../evil"):
        pass
    with pytest.raises(ModelNotFoundError, match="no serving version"):
        store.open_version("nope")
