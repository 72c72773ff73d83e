"""The model store: atomic publish, serving record, checksums, version numbering."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import ed25519_key_files, run_cli
from tuneserve import signing
from tuneserve.localstore import LocalModelStore
from tuneserve.repository import (
    MANIFEST_DIGEST,
    MANIFEST_SIGNATURE,
    STALE_STAGING_S,
    WRITER_LOCK,
    IntegrityError,
    Manifest,
    ModelNotFoundError,
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


def _publish(store: LocalModelStore, name: str = "m", content: bytes = b"onnx") -> int:
    with store.staging(name) as staged:
        (staged / "model.onnx").write_bytes(content)
        (staged / "sub").mkdir()
        (staged / "sub" / "x.txt").write_text("x")
        return store.publish(name, staged, _manifest())


def test_publish_numbers_versions_and_serves_the_first(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    assert _publish(store) == 1
    assert _publish(store) == 2
    assert store.serving_version("m") == 1
    version = store.open_version("m")
    assert version.manifest.version == 1
    assert set(version.manifest.files) == {"model.onnx", "sub/x.txt"}
    assert not list((tmp_path / "m").glob(".tmp-*"))


def test_manifest_without_pretokenizer_keeps_the_tokenizers_words(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
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
    store = LocalModelStore(tmp_path)
    _publish(store), _publish(store)
    store.delete_version("m", 2)
    assert store.versions("m") == [1]
    assert _publish(store) == 3


def test_a_version_deleted_while_it_is_read_is_not_found(tmp_path: Path, monkeypatch) -> None:
    """A reader racing a deletion gets ModelNotFoundError, never a bare OSError (the server's INTERNAL)."""
    from tuneserve import repository

    store = LocalModelStore(tmp_path)
    _publish(store), _publish(store)
    digest = repository._manifest_digest

    def delete_then_digest(path: Path) -> str:
        store.delete_version("m", 2)
        return digest(path)

    monkeypatch.setattr(repository, "_manifest_digest", delete_then_digest)
    with pytest.raises(ModelNotFoundError, match="just deleted"):
        store.open_version("m", 2)


def test_serving_version_cannot_be_deleted(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    with pytest.raises(StoreError, match="is serving"):
        store.delete_version("m", 1)


def test_set_serving_version_is_atomic_and_checked(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store), _publish(store)
    store.set_serving_version("m", 2)
    assert json.loads((tmp_path / "m" / "serving.json").read_text()) == {"version": 2}
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        store.set_serving_version("m", 7)
    assert store.serving_version("m") == 2


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match=r"checksum mismatch for model\.onnx"):
        store.open_version("m", 1)


def test_torn_folder_is_refused(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / "1" / "sub" / "x.txt").unlink()
    with pytest.raises(IntegrityError, match=r"sub/x.txt is missing"):
        store.open_version("m", 1)
    (tmp_path / "m" / "1" / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="not a complete model version"):
        store.open_version("m", 1)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    with pytest.raises(RuntimeError), store.staging("m") as staged:
        (staged / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert store.versions("m") == []
    assert not list((tmp_path / "m").glob(".tmp-*"))


def test_clean_removes_old_leftovers_only(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    (tmp_path / "m" / ".tmp-dead").mkdir()
    assert store.clean() == []  # fresh: it may be a writer that has not locked its folder yet
    old = time.time() - STALE_STAGING_S - 1
    os.utime(tmp_path / "m" / ".tmp-dead", (old, old))
    assert [p.name for p in store.clean()] == [".tmp-dead"]
    assert store.versions("m") == [1]
    assert not (tmp_path / "m" / "1" / WRITER_LOCK).exists()


def test_clean_never_removes_a_live_writers_folder(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    for _ in range(50):
        with store.staging("m") as staged:
            (staged / "model.onnx").write_bytes(b"onnx")
            assert store.clean(older_than_s=0) == []
            assert (staged / "model.onnx").is_file()
            store.publish("m", staged, _manifest())
    assert store.versions("m") == list(range(1, 51))
    (tmp_path / "m" / ".tmp-dead").mkdir()
    (tmp_path / "m" / ".tmp-dead" / WRITER_LOCK).touch()  # locked by a writer that died
    assert [p.name for p in store.clean(older_than_s=0)] == [".tmp-dead"]


def test_clean_racing_writers_in_other_processes_removes_none_of_theirs(tmp_path: Path) -> None:
    """Writer processes publish at machine speed while this one cleans with no age limit: every version
    they publish must be whole, and no staging folder of a live writer may go."""
    code = textwrap.dedent(
        """
        import sys
        from tuneserve.repository import Manifest, QuantizationInfo
        from tuneserve.localstore import LocalModelStore
        store = LocalModelStore(sys.argv[1])
        q = QuantizationInfo(requested="none", served="none")
        m = Manifest(name="m", task="classification", labels=["a", "b"], max_length=16, base_model="t",
                     onnx_file="model.onnx", quantization=q)
        for i in range(40):
            with store.staging("m") as staged:
                (staged / "model.onnx").write_bytes(b"x" * 4096)
                (staged / "tokenizer.json").write_text("{}")
                store.publish("m", staged, m)
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(2)]
    store = LocalModelStore(tmp_path)
    while any(w.poll() is None for w in writers):
        store.clean(older_than_s=0)
    assert [w.returncode for w in writers] == [0, 0]
    assert store.versions("m") == list(range(1, 81))
    for v in store.versions("m"):
        assert set(store.open_version("m", v).manifest.files) == {"model.onnx", "tokenizer.json"}


def test_bad_names_and_unknown_models(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    with pytest.raises(StoreError, match="invalid model name"), store.staging("../evil"):
        pass
    with pytest.raises(ModelNotFoundError, match="no serving version"):
        store.open_version("nope")


def _edit_manifest(path: Path, change) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["labels"].__setitem__(0, "z"),  # a label renamed
        lambda m: m["labels"].reverse(),  # label order reversed: every prediction flipped
        lambda m: m.__setitem__("max_length", 512),
    ],
    ids=["renamed-label", "reversed-labels", "max-length"],
)
def test_an_edited_manifest_is_refused(tmp_path: Path, change) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    _edit_manifest(tmp_path / "m" / "1", change)
    with pytest.raises(IntegrityError, match=r"manifest\.json was changed after publishing"):
        store.open_version("m", 1)
    with pytest.raises(IntegrityError):
        store.set_serving_version("m", 1)


def test_the_manifest_digest_is_sha256sum_format_and_required(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path)
    _publish(store)
    folder = tmp_path / "m" / "1"
    check = subprocess.run(["sha256sum", "-c", MANIFEST_DIGEST], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (folder / MANIFEST_DIGEST).write_text("nonsense\n")
    with pytest.raises(IntegrityError, match=r"is not '<sha256 hex>  manifest\.json'"):
        store.open_version("m", 1)
    (folder / MANIFEST_DIGEST).unlink()
    with pytest.raises(IntegrityError, match=r"has no manifest\.sha256"):
        store.open_version("m", 1)


def _publish_signed(store: LocalModelStore, key: Path | None) -> int:
    with store.staging("m") as staged:
        (staged / "model.onnx").write_bytes(b"onnx")
        signer = signing.load_private_key(key) if key else None
        return store.publish("m", staged, _manifest(), signing_key=signer)


def test_a_store_with_a_verify_key_opens_only_versions_signed_by_its_private_key(tmp_path: Path) -> None:
    _, private, public = ed25519_key_files(tmp_path, "ours")
    _, other, _ = ed25519_key_files(tmp_path, "theirs")
    root = tmp_path / "store"
    writer = LocalModelStore(root)
    assert _publish_signed(writer, private) == 1
    assert _publish_signed(writer, None) == 2
    assert _publish_signed(writer, other) == 3
    reader = LocalModelStore(root, verify_key=signing.load_public_key(public))
    assert reader.open_version("m", 1).manifest.version == 1
    with pytest.raises(IntegrityError, match="is not signed"):
        reader.open_version("m", 2)
    with pytest.raises(IntegrityError, match="does not verify"):
        reader.open_version("m", 3)
    # A writer without the key who recomputes the digest after editing the manifest is still refused.
    folder = root / "m" / "1"
    _edit_manifest(folder, lambda m: m["labels"].reverse())
    digest = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    (folder / MANIFEST_DIGEST).write_text(f"{digest}  manifest.json\n")
    assert LocalModelStore(root).open_version("m", 1).manifest.labels == [
        "b",
        "a",
    ]  # the digest alone: fooled
    with pytest.raises(IntegrityError, match="does not verify"):
        reader.open_version("m", 1)
    (folder / MANIFEST_SIGNATURE).write_text(base64.b64encode(b"x" * 64).decode())
    with pytest.raises(IntegrityError, match="does not verify"):
        reader.open_version("m", 1)


def test_key_files_that_are_not_ed25519_pem_are_refused(tmp_path: Path) -> None:
    _, private, public = ed25519_key_files(tmp_path)
    with pytest.raises(signing.SigningError, match="not a PEM public key"):
        signing.load_public_key(private)
    with pytest.raises(signing.SigningError, match="not an unencrypted PEM private key"):
        signing.load_private_key(public)
    with pytest.raises(signing.SigningError, match="cannot read key file"):
        signing.load_public_key(tmp_path / "missing.pem")


def test_seal_covers_intact_versions_of_an_older_store_and_refuses_torn_ones(tmp_path: Path) -> None:
    """A store published before manifests were covered: ``tuneserve seal`` records the missing digests
    (and signatures) of intact versions only, and leaves covered versions alone."""
    _, private, public = ed25519_key_files(tmp_path)
    root = tmp_path / "store"
    store = LocalModelStore(root)
    for _ in range(3):
        _publish(store)
    for v in (1, 2):
        (root / "m" / str(v) / MANIFEST_DIGEST).unlink()
    covered = (root / "m" / "3" / MANIFEST_DIGEST).read_bytes()
    (root / "m" / "2" / "model.onnx").write_bytes(b"tampered")
    torn = run_cli("seal", "--model-root", root, "--signing-key", private, check=False)
    assert torn.returncode == 1
    lines = [json.loads(line) for line in torn.stdout.splitlines()]
    assert lines[0] == {"name": "m", "version": 1, "sealed": True}
    assert lines[1]["sealed"] is False and "checksum mismatch for model.onnx" in lines[1]["error"]
    assert not (root / "m" / "2" / MANIFEST_DIGEST).exists()  # a torn version stays refused
    (root / "m" / "2" / "model.onnx").write_bytes(b"onnx")
    sealed = run_cli("seal", "--model-root", root, "--name", "m", "--signing-key", private)
    assert [json.loads(line) for line in sealed.stdout.splitlines()] == [
        {"name": "m", "version": 2, "sealed": True}
    ]
    assert (root / "m" / "3" / MANIFEST_DIGEST).read_bytes() == covered
    reader = LocalModelStore(root, verify_key=signing.load_public_key(public))
    assert [reader.open_version("m", v).manifest.version for v in (1, 2)] == [1, 2]
    assert run_cli("seal", "--model-root", root).stdout == ""  # nothing left to seal
