"""Hot swaps under load: callers never see a failed call while the serving version is promoted and rolled
back, at machine speed and with random gaps; a promote racing a delete gets a status, never INTERNAL; and
versions loaded for calls that name them are unloaded beyond the bound."""

from __future__ import annotations

import random
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import inference_pb2, model_pb2

from .live import ServerProcess

MODEL = "tiny-sentiment"
CALLERS = 8


@pytest.fixture()
def three_versions(model_store: Path, tmp_path: Path) -> Path:
    """The sentiment model with versions 1, 2 and 3 (the same model, published three times)."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(model_store / MODEL, root / MODEL)
    store = LocalModelStore(root)
    first = store.open_version(MODEL, 1)
    for _ in (2, 3):
        with store.staging(MODEL) as staged:
            shutil.copytree(first.path, staged, dirs_exist_ok=True)
            store.publish(MODEL, staged, first.manifest)
    return root


class Callers:
    """``CALLERS`` threads calling Classify on the serving version until stopped; failures by code."""

    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        self.ok = 0
        self.failed: Counter[str] = Counter()
        self.examples: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._call, daemon=True) for _ in range(CALLERS)]

    def __enter__(self) -> Callers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _call(self) -> None:
        request = inference_pb2.ClassifyRequest(model=MODEL, texts=["a fine film", "a dull one"])
        while not self._stop.is_set():
            try:
                self.proc.inference.Classify(request, timeout=30)
                with self._lock:
                    self.ok += 1
            except grpc.RpcError as exc:
                with self._lock:
                    self.failed[exc.code().name] += 1
                    if len(self.examples) < 5:
                        self.examples.append(f"{exc.code().name}: {exc.details()}")


def set_serving(proc: ServerProcess, version: int) -> None:
    reply = proc.models.SetServingVersion(
        model_pb2.SetServingVersionRequest(name=MODEL, version=version), timeout=60
    )
    assert reply.model.serving_version == version


def answering_version(proc: ServerProcess) -> int:
    return proc.inference.Classify(
        inference_pb2.ClassifyRequest(model=MODEL, texts=["ok"]), timeout=10
    ).version


@pytest.fixture()
def server(three_versions: Path) -> Iterator[ServerProcess]:
    # Rows wait up to 50 ms for company while the model is busy: calls on a retiring version last long
    # enough for the next swap to find it still retiring.
    proc = ServerProcess(three_versions, "--no-training", "--intra-op-threads", "1", "--max-wait-us", "50000")
    yield proc
    assert proc.stop() == 0


def test_promote_then_roll_back_at_once_under_load(server: ServerProcess) -> None:
    with Callers(server) as callers:
        for _ in range(25):
            set_serving(server, 2)
            set_serving(server, 1)  # at once: version 1 is still retiring
    assert not callers.failed, (callers.failed, callers.examples)
    assert callers.ok > 0
    assert answering_version(server) == 1
    info = server.models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=10).model
    assert info.serving_version == 1 and not info.load_error


def test_swaps_with_random_gaps_under_load(server: ServerProcess) -> None:
    rng = random.Random(17)
    version = 1
    with Callers(server) as callers:
        for _ in range(20):
            version = rng.choice([v for v in (1, 2, 3) if v != version])
            set_serving(server, version)
            threading.Event().wait(rng.uniform(0, 0.2))
    assert not callers.failed, (callers.failed, callers.examples)
    assert answering_version(server) == version


def test_promote_racing_a_delete_gets_a_status(server: ServerProcess, three_versions: Path) -> None:
    """Promote a fresh version while deleting it: one of them wins; the other gets FAILED_PRECONDITION or
    NOT_FOUND, never INTERNAL; the serving version answers and is listed."""
    store = LocalModelStore(three_versions)
    first = store.open_version(MODEL, 1)
    codes: Counter[str] = Counter()
    with ThreadPoolExecutor(2) as pool:
        for _ in range(8):
            with store.staging(MODEL) as staged:
                shutil.copytree(first.path, staged, dirs_exist_ok=True)
                v = store.publish(MODEL, staged, first.manifest)
            promote = pool.submit(
                server.models.SetServingVersion,
                model_pb2.SetServingVersionRequest(name=MODEL, version=v),
                timeout=60,
            )
            delete = pool.submit(
                server.models.DeleteModelVersion,
                model_pb2.DeleteModelVersionRequest(name=MODEL, version=v),
                timeout=60,
            )
            for future in (promote, delete):
                try:
                    future.result()
                    codes["OK"] += 1
                except grpc.RpcError as exc:
                    codes[exc.code().name] += 1
                    assert exc.code() in (
                        grpc.StatusCode.FAILED_PRECONDITION,
                        grpc.StatusCode.NOT_FOUND,
                    ), exc.details()
            served = answering_version(server)
            listed = server.models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=10).model
            assert served == listed.serving_version
            assert served in [m.version for m in listed.versions]
    assert codes["OK"] >= 8, codes


def test_versions_named_by_calls_are_unloaded_beyond_the_bound(three_versions: Path) -> None:
    proc = ServerProcess(three_versions, "--no-training", "--max-loaded-versions", "1")
    try:
        for v in (2, 3, 2, 3):
            request = inference_pb2.ClassifyRequest(model=MODEL, version=v, texts=["ok"])
            assert proc.inference.Classify(request, timeout=30).version == v
        proc.wait_event("model unloaded")
        loaded = _loaded_versions(proc)
        assert 1 in loaded and len(loaded) <= 2, loaded  # the serving one, and at most one other
    finally:
        assert proc.stop() == 0


def test_idle_versions_named_by_calls_are_unloaded(three_versions: Path) -> None:
    proc = ServerProcess(three_versions, "--no-training", "--loaded-version-idle", "0.5")
    try:
        request = inference_pb2.ClassifyRequest(model=MODEL, version=2, texts=["ok"])
        assert proc.inference.Classify(request, timeout=30).version == 2
        unloaded = proc.wait_event("model unloaded", timeout=30)
        assert unloaded["version"] == 2
        assert _loaded_versions(proc) == {1}
        assert answering_version(proc) == 1
    finally:
        assert proc.stop() == 0


def _loaded_versions(proc: ServerProcess) -> set[int]:
    info = proc.models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=10).model
    return {v.version for v in info.versions if v.execution_provider}
