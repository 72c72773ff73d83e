"""The model store on S3-compatible object storage (a real MinIO on a loopback port): the local store's
guarantees, made to hold with conditional writes, and the replica's cache."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneserve.lineage import Lineage
from tuneserve.repository import (
    ConflictError,
    IntegrityError,
    Manifest,
    ModelNotFoundError,
    QuantizationInfo,
    StoreConfig,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from tuneserve.s3store import S3ModelStore

LINEAGE = Lineage.model_validate(
    {
        "base_model": {"name": "t", "revision": "sha256:" + "0" * 64, "source": "folder"},
        "data": {"train": {"sha256": "a" * 64, "rows": 3}, "validation": {"sha256": "b" * 64, "rows": 2}},
        "tuneserve": {"version": "0.1.0", "git_commit": "c" * 40},
        "seed": 1,
        "device": "cpu",
        "world_size": 1,
        "search": {"trials": [{"number": 0, "value": 0.5}], "best_trial": 0},
    }
)


def _manifest() -> Manifest:
    q = QuantizationInfo(requested="none", served="none")
    return Manifest(
        name="m",
        task="classification",
        labels=["a", "b"],
        max_length=16,
        base_model="t",
        onnx_file="model.onnx",
        quantization=q,
        lineage=LINEAGE,
    )


def _publish(store: S3ModelStore, size: int = 1000, name: str = "m") -> int:
    with store.staging(name) as staged:
        (staged / "model.onnx").write_bytes(os.urandom(size))
        (staged / "sub").mkdir()
        (staged / "sub" / "x.txt").write_text("x")
        return store.publish(name, staged, _manifest())


@pytest.fixture
def replica(s3_store, tmp_path: Path) -> Callable[..., S3ModelStore]:
    """A store as one replica sees it: its own cache folder."""
    count = iter(range(1000))

    def make(max_bytes: int = 10**9) -> S3ModelStore:
        cache = tmp_path / f"cache-{next(count)}"
        store = open_store(StoreConfig(root=s3_store.uri, cache_dir=cache, cache_max_bytes=max_bytes))
        assert isinstance(store, S3ModelStore)
        return store

    return make


def _downloads(store: S3ModelStore) -> list[str]:
    """Record the keys this store downloads from now on."""
    seen: list[str] = []
    fetch = store._fetch

    def counting(key: str, path: Path, missing_ok: bool = False) -> None:
        seen.append(key)
        fetch(key, path, missing_ok)

    store._fetch = counting  # type: ignore[method-assign]
    return seen


def test_a_published_version_serves_first_and_reads_back_whole_on_another_replica(replica) -> None:
    writer, reader = replica(), replica()
    assert (_publish(writer), _publish(writer)) == (1, 2)
    assert reader.models() == ["m"] and reader.versions("m") == [1, 2] and reader.serving_version("m") == 1
    opened = reader.open_version("m", 2)
    assert set(opened.manifest.files) == {"model.onnx", "sub/x.txt"} and opened.manifest.version == 2
    assert opened.manifest.lineage == LINEAGE == reader.read_manifest("m", 1).lineage
    assert (opened.path / "sub" / "x.txt").read_text() == "x"


def test_concurrent_publishers_get_distinct_numbers_and_deleted_ones_are_never_reused(replica) -> None:
    got: list[int] = []

    def writer() -> None:
        store = replica()
        for _ in range(3):
            got.append(_publish(store))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 13))
    store = replica()
    assert store.versions("m") == list(range(1, 13))
    store.delete_version("m", 12)
    assert 12 not in store.versions("m")
    assert _publish(store) == 13


def test_a_version_without_its_manifest_is_absent_and_clean_removes_it(replica, s3_store) -> None:
    store = replica()
    _publish(store)
    # A dead writer's uploads under number 2: never listed, never opened.
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="models/m/2/model.onnx", Body=b"half")
    assert store.versions("m") == [1]
    with pytest.raises(ModelNotFoundError):
        replica().open_version("m", 2)
    assert store.clean() == []  # fresh: it may be a live writer's
    assert store.clean(older_than_s=0) == [f"{store.url}/m/2/"]
    listed = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix="models/m/2/")
    assert listed.get("KeyCount", 0) == 0


def test_the_serving_record_is_replaced_only_over_the_etag_read(replica) -> None:
    store = replica()
    _publish(store), _publish(store), _publish(store)
    other = replica()
    real_put = store._put

    def someone_else_first(key: str, body: bytes, **conditions: str | None) -> str:
        if key.endswith("serving.json"):
            other.set_serving_version("m", 3)  # lands between our read and our write
        return real_put(key, body, **conditions)

    store._put = someone_else_first  # type: ignore[method-assign]
    with pytest.raises(ConflictError, match="changed by another writer"):
        store.set_serving_version("m", 2)
    assert replica().serving_version("m") == 3  # not overwritten


def test_a_tampered_or_truncated_object_is_refused(replica, s3_store) -> None:
    store = replica()
    _publish(store)
    key = "models/m/1/model.onnx"
    body = s3_store.client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    for changed in (body[:-10], b"x" + body[1:]):
        s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=changed)
        with pytest.raises(IntegrityError, match=r"checksum mismatch for model\.onnx"):
            replica().open_version("m", 1)


def test_a_warm_cache_downloads_nothing_and_a_damaged_one_is_fetched_again(replica, s3_store) -> None:
    _publish(replica())
    cold = replica()
    downloads = _downloads(cold)
    path = cold.open_version("m", 1).path
    assert sorted(k.rsplit("/", 1)[-1] for k in downloads) == sorted(
        ["manifest.json", "manifest.sha256", "manifest.sig", "model.onnx", "x.txt"]
    )
    again = open_store(StoreConfig(root=s3_store.uri, cache_dir=cold.cache.root.parents[2]))
    assert isinstance(again, S3ModelStore)
    downloads = _downloads(again)
    assert again.open_version("m", 1).path == path and downloads == []
    (path / "model.onnx").write_bytes(b"rot")
    assert again.open_version("m", 1).manifest.version == 1
    assert "models/m/1/model.onnx" in downloads


def test_the_cache_evicts_least_recently_used_versions_that_do_not_serve(replica) -> None:
    writer = replica()
    for _ in range(4):
        _publish(writer, size=100_000)
    store = replica(max_bytes=350_000)
    assert store.serving_version("m") == 1
    for version in (1, 2, 3, 4):
        store.open_version("m", version)
        time.sleep(0.01)  # distinct modification times
    assert store.cache.versions("m") == [1, 3, 4]  # 2 is the least recently used that does not serve


def test_an_unreachable_store_is_an_error_but_a_start_can_use_the_cache(replica, s3_store, minio) -> None:
    store = replica()
    _publish(store)
    assert store.serving_version("m") == 1
    store.open_version("m", 1)
    minio.stop()
    try:
        fresh = open_store(StoreConfig(root=s3_store.uri, cache_dir=store.cache.root.parents[2]))
        with pytest.raises(StoreUnavailableError):
            fresh.serving_version("m")
        with fresh.cached_reads():
            assert fresh.models() == ["m"] and fresh.serving_version("m") == 1
            assert fresh.open_version("m", 1).manifest.version == 1
        empty = replica()
        with empty.cached_reads(), pytest.raises(StoreUnavailableError):
            empty.models()
    finally:
        minio.start()
    assert store.versions("m") == [1]


@pytest.mark.parametrize("root", ["gs://bucket/models", "s3:/models/root", "foo://x"])
def test_roots_with_another_scheme_are_refused(root: str) -> None:
    with pytest.raises(StoreError, match="s3://BUCKET/PREFIX"):
        open_store(root)


def test_reading_a_manifest_fetches_no_model_files(replica) -> None:
    writer = replica()
    _publish(writer), _publish(writer)
    reader = replica()
    downloads = _downloads(reader)
    assert reader.read_manifest("m", 2).version == 2
    assert {k.rsplit("/", 1)[-1] for k in downloads} <= {"manifest.json", "manifest.sha256", "manifest.sig"}
    assert reader.cache.versions("m") == []
