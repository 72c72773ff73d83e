"""Hot swaps under load: failed calls while the serving version changes, as an operator would swap.

    python benchmarks/swap.py [--model-root models] [--swaps 50] [--out benchmarks/results/swap.json]

Against one live server (``python -m tuneserve.server``, a separate process) over a copy of the store's
``sentiment`` model published three times (versions 1, 2, 3: the same files), 8 closed-loop callers send
Classify (2 texts, version 0, 30 s deadline) while the operator, through ``SetServingVersion``:

- ``promote_rollback``: promotes the next version and at once rolls back, ``--swaps`` times, no sleeps;
- ``random_gaps``: sets a random other version ``--swaps`` times, with 0-200 ms between swaps.

Each run reports the calls answered OK and the failed ones by status (with the first messages), the
version GetModel reports afterwards, and whether a call then answers from it. The target is 0 failed calls
in both runs. Models: as ``overload.py`` (built from the fixtures when the store has no ``sentiment``).
Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from overload import build_models
from serve import ROOT, Server

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

MODEL = "sentiment"
CALLERS = 8


def three_versions(source: LocalModelStore, root: Path) -> None:
    """``root`` holds ``source``'s serving sentiment version published as versions 1, 2 and 3."""
    shutil.rmtree(root, ignore_errors=True)
    store = LocalModelStore(root)
    served = source.open_version(MODEL)
    for _ in range(3):
        with store.staging(MODEL) as staged:
            shutil.copytree(served.path, staged, dirs_exist_ok=True)
            for stale in ("manifest.json", "manifest.sha256", "manifest.sig"):
                (staged / stale).unlink(missing_ok=True)
            store.publish(MODEL, staged, served.manifest)


class Callers:
    """``CALLERS`` threads calling Classify until stopped; OK calls and failures by status."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.stub = inference_pb2_grpc.InferenceServiceStub(channel)
        self.codes: Counter[str] = Counter()
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
            t.join(60)

    def _call(self) -> None:
        request = inference_pb2.ClassifyRequest(model=MODEL, texts=["a fine film", "a dull one"])
        while not self._stop.is_set():
            try:
                self.stub.Classify(request, timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
                if len(self.examples) < 5:
                    self.examples.append(f"{code}: {exc.details()}")
            with self._lock:
                self.codes[code] += 1


def run(channel: grpc.Channel, kind: str, swaps: int, rng: random.Random) -> dict[str, Any]:
    models = model_pb2_grpc.ModelServiceStub(channel)

    def set_serving(version: int) -> None:
        models.SetServingVersion(model_pb2.SetServingVersionRequest(name=MODEL, version=version), timeout=60)

    set_serving(1)
    current = 1
    started = time.perf_counter()
    with Callers(channel) as callers:
        for i in range(swaps):
            if kind == "promote_rollback":
                set_serving(2 + i % 2)
                set_serving(1)
            else:
                current = rng.choice([v for v in (1, 2, 3) if v != current])
                set_serving(current)
                time.sleep(rng.uniform(0.0, 0.2))
    seconds = time.perf_counter() - started
    model = models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=30).model
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    after = stub.Classify(inference_pb2.ClassifyRequest(model=MODEL, texts=["after the swaps"]), timeout=30)
    codes = dict(callers.codes)
    return {
        "swaps": swaps,
        "seconds": round(seconds, 2),
        "calls_ok": codes.pop("OK", 0),
        "calls_failed": sum(codes.values()),
        "failed_by_status": codes,
        "failed_examples": callers.examples,
        "serving_version_reported": model.serving_version,
        "versions_listed": [v.version for v in model.versions],
        "call_after_answers_version": after.version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-root", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--build-root", type=Path, default=ROOT / "benchmarks" / "results" / "overload-models"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "swap-models")
    parser.add_argument("--swaps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "swap.json")
    args = parser.parse_args()
    source = args.model_root
    if LocalModelStore(source).serving_version(MODEL) is None:
        source = args.build_root
        if LocalModelStore(source).serving_version(MODEL) is None:
            build_models(source)
    three_versions(LocalModelStore(source), args.work)
    figures: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "runs": {}}
    server = Server(args.work, threads=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            rng = random.Random(args.seed)
            for kind in ("promote_rollback", "random_gaps"):
                figures["runs"][kind] = run(channel, kind, args.swaps, rng)
    finally:
        figures["server_exit_code"] = server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
