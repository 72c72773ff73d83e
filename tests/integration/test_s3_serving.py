"""Serving and training from S3-compatible object storage end to end, against a real MinIO (the ``minio`` and
``s3_store`` fixtures): what README "Models and data in object storage" promises. Export, serve from the
bucket, train into it and follow the promotion on another replica; concurrent exports; a tampered object; the
store stopped under load; a start while the store is down; roots with another scheme; training data in the
bucket; a job whose upload is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from helpers import FIXTURES, last_json, run_cli
from tuneserve import data as datasets
from tuneserve.localstore import LocalModelStore
from tuneserve.repository import StoreConfig, open_store
from tuneserve.s3store import S3ModelStore
from tuneserve.v1 import common_pb2, inference_pb2, model_pb2, training_pb2

from .live import ServerProcess, metric_value
from .training import classification_request, code_of, wait_job

MODEL = "tiny-sentiment"
POLL = "0.2"  # --store-poll-interval of the replicas, seconds
CALLERS = 6
FOLLOW_DOWN = "the model store cannot be read: loaded models keep serving"
FOLLOW_BACK = "the model store can be read again"
LOOPBACK = (
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--metrics-host",
    "127.0.0.1",
    "--metrics-port",
    "0",
    "--http-port",
    "0",
)


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def answering_version(proc: ServerProcess) -> int:
    request = inference_pb2.ClassifyRequest(model=MODEL, texts=["a fine film"])
    return proc.inference.Classify(request, timeout=30).version


def serving_here(proc: ServerProcess) -> int:
    return proc.models.GetModel(model_pb2.GetModelRequest(name=MODEL), timeout=30).model.serving_version


def store_at(uri: str, cache: Path) -> S3ModelStore:
    """The bucket as another process sees it: its own client and cache."""
    store = open_store(StoreConfig(root=uri, cache_dir=cache))
    assert isinstance(store, S3ModelStore)
    return store


def keys(s3_store: Any, prefix: str) -> list[str]:
    pages = s3_store.client.get_paginator("list_objects_v2").paginate(Bucket=s3_store.bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture()
def publish(s3_store: Any, model_store: Path, tmp_path: Path) -> Callable[[int], S3ModelStore]:
    """Publish ``n`` versions of the tiny sentiment model into the test's bucket (copies of the local
    fixture's version 1; the first serves) and return the writer's store."""

    def publish(n: int) -> S3ModelStore:
        writer = store_at(s3_store.uri, tmp_path / "cache-publisher")
        first = LocalModelStore(model_store).open_version(MODEL, 1)
        for expected in range(1, n + 1):
            with writer.staging(MODEL) as staged:
                shutil.copytree(first.path, staged, dirs_exist_ok=True)
                assert writer.publish(MODEL, staged, first.manifest) == expected
        return writer

    return publish


@pytest.fixture()
def start(s3_store: Any, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a replica on the test's bucket: ``start(cache, *flags, training=False, env=None)``. Each has the
    cache folder named ``cache`` (the same name: the same folder) and polls the store every ``POLL``
    seconds; with ``training``, its own jobs folder. All are stopped, and must exit 0, at teardown."""
    started: list[ServerProcess] = []

    def start(cache: str, *flags: str, training: bool = False, env: dict[str, str] | None = None):
        args = ["--cache-dir", str(tmp_path / cache), "--store-poll-interval", POLL]
        args += ["--intra-op-threads", "1"]
        args += ["--jobs-dir", str(tmp_path / f"jobs-{cache}")] if training else ["--no-training"]
        proc = ServerProcess(s3_store.uri, *args, *flags, env=env)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    codes = [proc.stop() for proc in started]
    assert codes == [0] * len(codes), codes


def cached_versions(cache: Path, bucket: str) -> list[int]:
    """Versions of the model in a replica's cache folder (the layout of ``s3store.VersionCache``)."""
    folder = cache / "s3" / bucket / "models" / "versions" / MODEL
    return sorted(int(p.name) for p in folder.glob("[0-9]*")) if folder.is_dir() else []


class Callers:
    """Threads calling Classify at machine speed until stopped: answers by version, failures by code."""

    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        self.ok = 0
        self.versions: Counter[int] = Counter()
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
                version = self.proc.inference.Classify(request, timeout=30).version
                with self._lock:
                    self.ok += 1
                    self.versions[version] += 1
            except grpc.RpcError as exc:
                with self._lock:
                    self.failed[exc.code().name] += 1
                    if len(self.examples) < 5:
                        self.examples.append(f"{exc.code().name}: {exc.details()}")


def follow_errors(proc: ServerProcess) -> float:
    return metric_value(proc.scrape(), "tuneserve_store_errors_total", operation="follow")


def events_named(proc: ServerProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in list(proc.events) if e.get("event") == name]


# -- 1. export -> serve -> Train publishes into the bucket -> another replica follows -----------------------


def test_export_serve_train_into_the_bucket_and_a_second_replica_follows(
    s3_store: Any, trained: dict[str, Path], tiny_base: Path, start, tmp_path: Path
) -> None:
    exported = run_cli(
        "export",
        trained["classification"],
        "--model-root",
        s3_store.uri,
        "--name",
        MODEL,
        "--quantize",
        "none",
        "--tolerance",
        "100",
        env={"TUNESERVE_CACHE_DIR": str(tmp_path / "cache-export")},
    )
    assert last_json(exported.stdout)["version"] == 1
    published = keys(s3_store, f"models/{MODEL}/")
    assert f"models/{MODEL}/1/manifest.json" in published and f"models/{MODEL}/serving.json" in published

    trainer = start("cache-trainer", training=True)
    follower = start("cache-follower")
    assert answering_version(trainer) == answering_version(follower) == 1

    request = classification_request(
        MODEL, tiny_base, epochs=1, promotion_tolerance=1.0, quantization=common_pb2.QUANTIZATION_NONE
    )
    done = wait_job(trainer, trainer.training.Train(request, timeout=60).job.id)
    assert done.state == training_pb2.JOB_STATE_SUCCEEDED, done.error
    assert done.version == 2 and done.promoted, done.promotion_reason
    assert done.baseline_version == 1

    # Published into the bucket, whole, and promoted there: what any other process reads.
    reader = store_at(s3_store.uri, tmp_path / "cache-reader")
    assert reader.versions(MODEL) == [1, 2] and reader.serving_version(MODEL) == 2
    assert reader.open_version(MODEL, 2).manifest.version == 2

    assert answering_version(trainer) == 2 and serving_here(trainer) == 2
    eventually(lambda: answering_version(follower) == 2, "the follower serves the promoted version")
    assert serving_here(follower) == 2
    assert metric_value(follower.scrape(), "tuneserve_store_reloads_total", model=MODEL, result="loaded") == 1
    # Each replica downloaded into its own cache.
    assert cached_versions(tmp_path / "cache-follower", s3_store.bucket) == [1, 2]
    assert follow_errors(follower) == 0


# -- 2. concurrent exports -------------------------------------------------------------------------------


def test_two_concurrent_exports_get_distinct_versions_that_both_verify(
    s3_store: Any, trained: dict[str, Path], tmp_path: Path
) -> None:
    """Two ``tuneserve export`` processes (own clients, own caches, as on two machines) publish the same
    model at once. The number race itself is driven harder at store level (test_s3_store.py)."""

    def export(i: int) -> dict[str, Any]:
        result = run_cli(
            "export",
            trained["classification"],
            "--model-root",
            s3_store.uri,
            "--name",
            MODEL,
            "--quantize",
            "none",
            "--tolerance",
            "100",
            env={"TUNESERVE_CACHE_DIR": str(tmp_path / f"cache-export-{i}")},
        )
        return last_json(result.stdout)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(export, [0, 1]))
    assert sorted(r["version"] for r in results) == [1, 2]

    reader = store_at(s3_store.uri, tmp_path / "cache-reader")
    assert reader.versions(MODEL) == [1, 2]
    for version in (1, 2):
        opened = reader.open_version(MODEL, version)  # downloaded and every checksum verified
        assert opened.manifest.version == version and opened.manifest.name == MODEL
    assert reader.serving_version(MODEL) in (1, 2)  # the first to publish serves; the other did not overwrite
    last = s3_store.client.get_object(Bucket=s3_store.bucket, Key=f"models/{MODEL}/last_version")
    assert last["Body"].read() == b"2"


# -- 3. a tampered object ---------------------------------------------------------------------------------


def test_a_tampered_object_is_refused_and_the_serving_version_keeps_serving(
    s3_store: Any, publish, start, tmp_path: Path
) -> None:
    onnx = publish(2).open_version(MODEL, 2).manifest.onnx_file
    replica = start("cache-cold")  # loads version 1 only: version 2 is not in its cache
    assert answering_version(replica) == 1
    assert cached_versions(tmp_path / "cache-cold", s3_store.bucket) == [1]

    key = f"models/{MODEL}/2/{onnx}"
    body = s3_store.client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    tampered = body[:-1] + bytes([body[-1] ^ 0xFF])  # same size, one byte changed
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=tampered)

    with Callers(replica) as callers:
        eventually(lambda: callers.ok > 0, "calls are answered")
        with pytest.raises(grpc.RpcError) as refused:
            replica.models.SetServingVersion(
                model_pb2.SetServingVersionRequest(name=MODEL, version=2), timeout=60
            )
        answered_before = callers.ok
        eventually(lambda: callers.ok > answered_before, "calls are answered after the refusal")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
    assert f"checksum mismatch for {onnx}" in refused.value.details()
    assert not callers.failed, (callers.failed, callers.examples)
    assert set(callers.versions) == {1}
    assert answering_version(replica) == 1 and serving_here(replica) == 1
    assert store_at(s3_store.uri, tmp_path / "cache-reader").serving_version(MODEL) == 1
    assert cached_versions(tmp_path / "cache-cold", s3_store.bucket) == [1]  # never kept


# -- 4. the store stopped and restarted under load ----------------------------------------------------------


def test_the_store_stopped_and_restarted_under_load(s3_store: Any, publish, start, tmp_path: Path) -> None:
    writer = publish(2)
    replica = start("cache-replica")
    minio = s3_store.server
    with Callers(replica) as callers:
        eventually(lambda: callers.ok > 0, "calls are answered")
        minio.stop()
        # A few polls, each of them failing and counted.
        eventually(lambda: follow_errors(replica) >= 3, "failed polls are counted")
        answered_while_down = callers.ok
        eventually(lambda: callers.ok > answered_while_down, "calls are answered while the store is down")
        minio.start()
        # A promotion made through the store (another process's store object) reaches the replica.
        writer.set_serving_version(MODEL, 2)
        eventually(lambda: callers.versions[2] > 0, "the replica follows the promotion after the restart")
    assert not callers.failed, (callers.failed, callers.examples)
    assert answering_version(replica) == 2 and serving_here(replica) == 2
    replica.wait_event(FOLLOW_BACK)
    down = events_named(replica, FOLLOW_DOWN)
    assert len(down) == 1, down  # once per outage, not once per failed poll
    assert down[0]["store"] == s3_store.uri and "cannot be reached" in down[0]["error"]


# -- 5. starting while the store is down --------------------------------------------------------------------


def test_a_start_with_the_store_down_uses_a_warm_cache_and_fails_cleanly_without_one(
    s3_store: Any, publish, start, tmp_path: Path
) -> None:
    writer = publish(2)
    first = start("cache-warm")  # a previous run fills the cache
    assert answering_version(first) == 1
    assert first.stop() == 0

    s3_store.server.stop()
    again = start("cache-warm")
    again.wait_event("object store unreachable: starting from the cache")
    assert answering_version(again) == 1 and serving_here(again) == 1

    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuneserve.server",
            "--model-root",
            s3_store.uri,
            "--cache-dir",
            str(tmp_path / "cache-empty"),
            "--no-training",
            *LOOPBACK,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode != 0
    assert "the object store cannot be reached" in empty.stderr, empty.stderr[-3000:]
    assert "Traceback" not in empty.stderr, empty.stderr[-3000:]
    assert '"serving"' not in empty.stderr

    # The server started from its cache follows the store once it is back.
    s3_store.server.start()
    writer.set_serving_version(MODEL, 2)
    eventually(lambda: answering_version(again) == 2, "the cache-started server follows the store")


# -- 6. roots with another scheme ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "named"),
    [("s3:/models/root", "is not s3://BUCKET/PREFIX"), ("gs://x/y", "the scheme 'gs'")],
)
def test_export_to_a_root_with_another_scheme_is_a_usage_error(
    root: str, named: str, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once taken for a local folder: ``s3:/models/root`` exported into ``./s3:/models/root``."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("export", trained["classification"], "--model-root", root, "--name", MODEL, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Invalid value for '--model-root'" in result.stderr and named in result.stderr
    assert list(tmp_path.iterdir()) == []  # no s3: (or gs:) folder


def test_serve_from_a_root_with_another_scheme_exits_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tuneserve.cli", "serve", "--model-root", "gs://x", *LOOPBACK],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "the scheme 'gs'" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- 7. training data in the bucket -------------------------------------------------------------------------


def test_train_data_uris_are_read_from_the_bucket_inside_the_data_root_only(
    s3_store: Any, start, tiny_base: Path
) -> None:
    bucket = s3_store.bucket
    lines = [
        json.dumps({"text": ex.text, "label": ex.labels[0]})
        for ex in datasets.read_classification(FIXTURES / "sentiment_train.tsv")
    ]
    body = ("\n".join(lines) + "\n").encode()
    other_bucket = s3_store.server.make_bucket(f"outside-{bucket[-54:].lstrip('-')}")
    # The same file inside the data root and outside it: a refusal is about where, not whether it exists.
    for where, key in [
        (bucket, "data/train.jsonl"),
        (bucket, "other/train.jsonl"),
        (bucket, "database/train.jsonl"),  # the prefix "data" is a folder, not a string prefix
        (other_bucket, "data/train.jsonl"),
    ]:
        s3_store.client.put_object(Bucket=where, Key=key, Body=body)
    trainer = start("cache-data", "--data-root", f"s3://{bucket}/data", training=True)

    def train(model: str, uri: str) -> Any:
        request = classification_request(model, tiny_base, epochs=1)
        request.training_data.CopyFrom(training_pb2.Dataset(uri=uri))
        return trainer.training.Train(request, timeout=60)

    outside = [
        f"s3://{bucket}/other/train.jsonl",
        f"s3://{bucket}/database/train.jsonl",
        f"s3://{other_bucket}/data/train.jsonl",
        f"s3://{bucket}/data/../other/train.jsonl",
        "../other/train.jsonl",
    ]
    for uri in outside:
        with pytest.raises(grpc.RpcError) as refused:
            train("from-bucket", uri)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, uri
        assert "outside the server's data root" in refused.value.details(), (uri, refused.value.details())
    # Inside the root but absent: refused too, so an accepted request is one whose object was read.
    missing = code_of(train, "from-bucket", f"s3://{bucket}/data/missing.jsonl")
    assert missing == grpc.StatusCode.INVALID_ARGUMENT

    jobs = [train("from-bucket", f"s3://{bucket}/data/train.jsonl").job, train("by-key", "train.jsonl").job]
    for job in jobs:
        assert job.state in (training_pb2.JOB_STATE_QUEUED, training_pb2.JOB_STATE_RUNNING), job
        trainer.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id), timeout=30)
    for job in jobs:
        assert wait_job(trainer, job.id, timeout=120).state == training_pb2.JOB_STATE_CANCELLED


# -- 8. a Train job whose upload fails ---------------------------------------------------------------------


def write_refused_credentials(s3_store: Any) -> dict[str, str]:
    """Temporary credentials (STS AssumeRole with an inline session policy) that read the bucket and may
    take a version number (``last_version``) and delete, but may not upload a version's files. MinIO's root
    user is above bucket policies, so the refusal has to come with the credentials themselves."""
    import boto3

    arn = f"arn:aws:s3:::{s3_store.bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject"], "Resource": [f"{arn}/*"]},
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"{arn}/models/*/last_version"]},
        ],
    }
    env = s3_store.env
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    got = sts.assume_role(
        RoleArn="arn:aws:iam::000000000000:role/tuneserve-test",  # MinIO ignores it for its own users
        RoleSessionName="tuneserve-trainer",
        Policy=json.dumps(policy),
        DurationSeconds=3600,
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": got["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": got["SecretAccessKey"],
        "AWS_SESSION_TOKEN": got["SessionToken"],
    }


def test_a_train_job_whose_upload_is_refused_fails_and_serving_is_untouched(
    s3_store: Any, publish, start, tiny_base: Path, tmp_path: Path
) -> None:
    publish(1)
    trainer = start("cache-refused", training=True, env=write_refused_credentials(s3_store))
    assert answering_version(trainer) == 1

    request = classification_request(
        MODEL, tiny_base, epochs=1, promotion_tolerance=1.0, quantization=common_pb2.QUANTIZATION_NONE
    )
    with Callers(trainer) as callers:
        done = wait_job(trainer, trainer.training.Train(request, timeout=60).job.id)
    assert done.state == training_pb2.JOB_STATE_FAILED, done
    assert "AccessDenied" in done.error and f"models/{MODEL}/2/" in done.error, done.error
    assert str(tmp_path) not in done.error, done.error  # the server's own folders: not the caller's business
    assert done.version == 0 and not done.promoted

    assert not callers.failed, (callers.failed, callers.examples)
    assert set(callers.versions) == {1}
    assert answering_version(trainer) == 1 and serving_here(trainer) == 1
    reader = store_at(s3_store.uri, tmp_path / "cache-reader")
    assert reader.versions(MODEL) == [1] and reader.serving_version(MODEL) == 1
    assert keys(s3_store, f"models/{MODEL}/2/") == []  # the partial upload was removed
