"""Models in object storage: start-up from a bucket (empty cache, warm cache, local store) and the time a
promotion takes to reach a second replica.

    python benchmarks/object_store.py [--model-root models] [--rounds 3] [--promotions 5]
        [--poll-interval 2] [--out benchmarks/results/object_store.json]

MinIO on loopback (``$MINIO``, else the binary ``make minio`` caches) gets a copy of the local store's
serving versions (the demo models, ``make demo``): ``s3://bench/models``. Each round starts, in turn:

- ``local``: a server over the local store, the baseline;
- ``cold``: a server over the bucket with an empty cache: it downloads every serving version (a version's
  files in parallel) before health says SERVING;
- ``warm``: the same command again over the cache the cold start filled: it downloads nothing.

Start-up is from process start to health SERVING (every model loaded and warmed up). The cache's bytes and
files are read after each start: a warm start must leave them unchanged.

Promotion: two replicas over the bucket, each with a cache of its own and ``--store-poll-interval`` set to
``--poll-interval``. The serving sentiment version is published again as new versions; for each, replica A
gets ``SetServingVersion`` and the clock runs until replica B answers a Classify from that version (B is
called every 5 ms). ``leader_set_serving_s`` is A's own download, load and switch; the figure for B is the
poll wait (uniform in 0..interval: each promotion waits a random part of an interval first) plus B's
download and load of the version; ``after_leader_s`` counts from A's answer.

Figures go to ``--out`` as JSON. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from serve import ROOT, Server

from tuneserve.localstore import LocalModelStore
from tuneserve.repository import StoreConfig, open_store
from tuneserve.v1 import inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

sys.path.insert(0, str(ROOT / "tests"))
from s3server import MinioServer, minio_binary  # the tests' MinIO runner: one way to start it

BUCKET = "bench"
MODEL = "sentiment"


def copy_serving_versions(source: LocalModelStore, uri: str, cache: Path) -> dict[str, int]:
    """Publish each model's serving version of ``source`` into the bucket; return bytes per model."""
    target = open_store(StoreConfig(root=uri, cache_dir=cache))
    sizes = {}
    for name in source.models():
        served = source.open_version(name)
        with target.staging(name) as staged:
            shutil.copytree(served.path, staged, dirs_exist_ok=True)
            for stale in ("manifest.json", "manifest.sha256", "manifest.sig"):
                (staged / stale).unlink(missing_ok=True)
            sizes[name] = sum(f.stat().st_size for f in staged.rglob("*") if f.is_file())
            target.publish(name, staged, served.manifest)
    return sizes


def republish(uri: str, cache: Path, count: int) -> list[int]:
    """Publish the bucket's serving sentiment version ``count`` more times, unpromoted; return the numbers."""
    store = open_store(StoreConfig(root=uri, cache_dir=cache))
    served = store.open_version(MODEL)
    numbers = []
    for _ in range(count):
        with store.staging(MODEL) as staged:
            shutil.copytree(served.path, staged, dirs_exist_ok=True)
            for stale in ("manifest.json", "manifest.sha256", "manifest.sig"):
                (staged / stale).unlink(missing_ok=True)
            numbers.append(store.publish(MODEL, staged, served.manifest, serve_if_first=False))
    return numbers


def cache_state(cache: Path) -> dict[str, int]:
    files = [f for f in cache.rglob("*") if f.is_file()]
    return {"bytes": sum(f.stat().st_size for f in files), "files": len(files)}


def start(root: str, env: dict[str, str], cache: Path | None, poll_s: float | None = None) -> Server:
    extra = ["--cache-dir", str(cache)] if cache is not None else []
    if poll_s is not None:
        extra += ["--store-poll-interval", str(poll_s)]
    return Server(root, threads=1, extra_args=extra, env=env)


def startups(local_root: Path, uri: str, env: dict[str, str], work: Path, rounds: int) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"local": [], "cold": [], "warm": []}
    caches: list[dict[str, Any]] = []
    for k in range(rounds):
        server = start(str(local_root), env, None)
        seconds["local"].append(server.cold_start_s)
        server.stop()

        cache = work / f"cache-{k}"
        server = start(uri, env, cache)
        seconds["cold"].append(server.cold_start_s)
        server.stop()
        after_cold = cache_state(cache)

        server = start(uri, env, cache)
        seconds["warm"].append(server.cold_start_s)
        server.stop()
        after_warm = cache_state(cache)
        caches.append({"after_cold": after_cold, "after_warm": after_warm})
        print(
            f"round {k + 1}: local {seconds['local'][-1]:.2f} s, cold {seconds['cold'][-1]:.2f} s, "
            f"warm {seconds['warm'][-1]:.2f} s; cache {after_cold['bytes'] / 1e6:.1f} MB, "
            f"unchanged by the warm start: {after_cold == after_warm}",
            file=sys.stderr,
        )
    return {
        "seconds": {kind: [round(s, 3) for s in values] for kind, values in seconds.items()},
        "median_s": {kind: round(statistics.median(values), 3) for kind, values in seconds.items()},
        "cold_over_local": round(statistics.median(seconds["cold"]) / statistics.median(seconds["local"]), 2),
        "warm_over_local": round(statistics.median(seconds["warm"]) / statistics.median(seconds["local"]), 2),
        "caches": caches,
        "warm_start_downloaded_nothing": all(c["after_cold"] == c["after_warm"] for c in caches),
    }


def answering_version(stub: inference_pb2_grpc.InferenceServiceStub) -> int:
    reply = stub.Classify(inference_pb2.ClassifyRequest(model=MODEL, texts=["a fine film"]), timeout=10)
    return reply.version


def promotions(
    uri: str, env: dict[str, str], work: Path, count: int, poll_s: float, rng: random.Random
) -> dict[str, Any]:
    numbers = republish(uri, work / "cache-publisher", count)
    leader = start(uri, env, work / "cache-a", poll_s)
    follower = start(uri, env, work / "cache-b", poll_s)
    seconds: list[float] = []
    leader_seconds: list[float] = []
    after_leader: list[float] = []
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{leader.port}") as a,
            grpc.insecure_channel(f"127.0.0.1:{follower.port}") as b,
        ):
            models = model_pb2_grpc.ModelServiceStub(a)
            classify_b = inference_pb2_grpc.InferenceServiceStub(b)
            for version in numbers:
                # Each promotion at a random phase of B's polls: right after B's last switch, the phase
                # would be the same every time (B sleeps an interval after each poll and load).
                time.sleep(rng.uniform(0, poll_s))
                started = time.perf_counter()
                models.SetServingVersion(
                    model_pb2.SetServingVersionRequest(name=MODEL, version=version), timeout=120
                )
                leader_seconds.append(time.perf_counter() - started)
                while answering_version(classify_b) != version:
                    time.sleep(0.005)
                seconds.append(time.perf_counter() - started)
                after_leader.append(seconds[-1] - leader_seconds[-1])
                print(
                    f"version {version}: leader {leader_seconds[-1]:.2f} s, follower answering after "
                    f"{seconds[-1]:.2f} s",
                    file=sys.stderr,
                )
    finally:
        leader.stop()
        follower.stop()
    return {
        "poll_interval_s": poll_s,
        "leader_set_serving_s": [round(s, 3) for s in leader_seconds],
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "after_leader_s": [round(s, 3) for s in after_leader],
        "after_leader_median_s": round(statistics.median(after_leader), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-root", type=Path, default=ROOT / "models")
    parser.add_argument("--minio", default=None, help="MinIO binary (default: $MINIO, else the cached build)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--promotions", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="The replicas' store poll interval.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the promotions' random phases.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "object_store.json")
    args = parser.parse_args()

    source = LocalModelStore(args.model_root)
    if not source.models():
        sys.exit(f"no models in {args.model_root}: `make demo` builds the demo models")
    with tempfile.TemporaryDirectory(prefix="tuneserve-bench-s3-") as tmp:
        work = Path(tmp)
        binary = Path(args.minio) if args.minio else minio_binary()
        if binary is None:
            sys.exit("no MinIO binary: `make minio` builds and caches it, or pass --minio / set $MINIO")
        with MinioServer(binary, work / "minio") as minio:
            minio.make_bucket(BUCKET)
            env = minio.env()
            os.environ.update(env)  # the publishing below runs in this process
            uri = f"s3://{BUCKET}/models"
            sizes = copy_serving_versions(source, uri, work / "cache-publisher")
            result = {
                "models": sizes,
                "startup": startups(args.model_root, uri, env, work, args.rounds),
                "promotion": promotions(
                    uri, env, work, args.promotions, args.poll_interval, random.Random(args.seed)
                ),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
