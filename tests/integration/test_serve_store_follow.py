"""Replicas sharing one model store: a serving version set by another process (a trainer, another replica)
is picked up by polling, a torn one is refused while the old version goes on serving, new models load."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import inference_pb2, model_pb2

from .live import ServerProcess, metric_value


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def answering_version(proc: ServerProcess, model: str = "tiny-sentiment") -> int:
    request = inference_pb2.ClassifyRequest(model=model, texts=["a fine film"])
    return proc.inference.Classify(request, timeout=10).version


def test_replicas_follow_serving_versions_set_in_the_shared_store(model_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(model_store, root, ignore=shutil.ignore_patterns(".jobs"))
    # A second verified version, as a trainer would publish it.
    shutil.copytree(root / "tiny-sentiment" / "1", root / "tiny-sentiment" / "2")
    writer = ServerProcess(root, "--store-poll-interval", "0", "--no-training")
    follower = ServerProcess(root, "--store-poll-interval", "0.2", "--no-training")
    try:
        assert answering_version(follower) == 1

        # Promotion through another replica's ModelService: the follower switches, the writer at once.
        writer.models.SetServingVersion(model_pb2.SetServingVersionRequest(name="tiny-sentiment", version=2))
        assert answering_version(writer) == 2
        eventually(lambda: answering_version(follower) == 2)
        info = follower.models.GetModel(model_pb2.GetModelRequest(name="tiny-sentiment"))
        assert info.model.serving_version == 2

        # A torn version recorded as serving (by hand: the store's own writer refuses it) never loads;
        # version 2 goes on answering and the failure is logged and counted once.
        torn = root / "tiny-sentiment" / "3"
        shutil.copytree(root / "tiny-sentiment" / "2", torn)
        with (torn / "model.onnx").open("ab") as f:
            f.write(b"torn")
        (root / "tiny-sentiment" / "serving.json").write_text('{"version": 3}')
        eventually(
            lambda: metric_value(follower.scrape(), "tuneserve_store_reloads_total", result="failed") == 1
        )
        time.sleep(0.6)  # several more polls: not retried while the record stays the same
        assert metric_value(follower.scrape(), "tuneserve_store_reloads_total", result="failed") == 1
        assert answering_version(follower) == 2
        failed = follower.wait_event("serving version from the store failed to load")
        assert failed["version"] == 3 and failed["still_serving"] == 2
        assert "checksum" in failed["error"]

        # Rolled back by the store's writer: the follower switches again.
        LocalModelStore(root).set_serving_version("tiny-sentiment", 1)
        eventually(lambda: answering_version(follower) == 1)

        # A model published after start-up is served without a restart.
        # (Published whole, by a rename, as the exporter does.)
        shutil.copytree(root / "tiny-sentiment", tmp_path / "late-model", ignore=shutil.ignore_patterns("3"))
        (tmp_path / "late-model").rename(root / "late-model")
        eventually(lambda: _serves(follower, "late-model"))
        assert metric_value(follower.scrape(), "tuneserve_store_reloads_total", model="late-model") == 1
    finally:
        assert follower.stop() == 0
        assert writer.stop() == 0


def _serves(proc: ServerProcess, model: str) -> bool:
    try:
        return answering_version(proc, model) == 1
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return False
