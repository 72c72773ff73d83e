"""A store that cannot be fooled: edited manifests and unsigned versions are refused by a live server, int8
files made for other CPUs are flagged, and dead writers' staging folders are cleaned at start-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from helpers import ed25519_key_files
from tuneserve.cpu import is_arm64
from tuneserve.localstore import LocalModelStore
from tuneserve.repository import STALE_STAGING_S, Manifest
from tuneserve.v1 import inference_pb2, model_pb2, training_pb2

from .live import ServerProcess, start_failure
from .training import classification_request, wait_job


def _republish(
    source: Path, root: Path, name: str, *, key: Ed25519PrivateKey | None = None, **quantization
) -> int:
    """Publish a copy of a verified version folder into ``root`` (signed with ``key`` if given)."""
    store = LocalModelStore(root)
    manifest = Manifest.model_validate_json((source / "manifest.json").read_text())
    if quantization:
        manifest = manifest.model_copy(
            update={"quantization": manifest.quantization.model_copy(update=quantization)}
        )
    with store.staging(name) as staged:
        for rel in manifest.files:
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, staged / rel)
        return store.publish(name, staged, manifest, signing_key=key)


def _classify(proc: ServerProcess, name: str) -> list:
    request = inference_pb2.ClassifyRequest(model=name, texts=["the movie was great"])
    return list(proc.inference.Classify(request, timeout=30).results)


def test_a_manifest_with_reversed_labels_is_refused_and_the_intact_version_keeps_serving(
    sentiment_version: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    _republish(sentiment_version, root, "s")
    _republish(sentiment_version, root, "s")
    manifest_path = root / "s" / "2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["labels"].reverse()  # every prediction would come back flipped
    manifest_path.write_text(json.dumps(manifest, indent=2))
    proc = ServerProcess(root)
    try:
        before = _classify(proc, "s")
        with pytest.raises(grpc.RpcError) as info:
            proc.models.SetServingVersion(model_pb2.SetServingVersionRequest(name="s", version=2))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "manifest.json was changed after publishing" in info.value.details()
        assert _classify(proc, "s") == before
    finally:
        assert proc.stop() == 0


def test_a_server_with_a_verify_key_serves_only_signed_versions(
    sentiment_version: Path, tmp_path: Path
) -> None:
    key, _, public = ed25519_key_files(tmp_path)
    root = tmp_path / "models"
    _republish(sentiment_version, root, "signed", key=key)
    _republish(sentiment_version, root, "signed")  # version 2, unsigned
    _republish(sentiment_version, root, "signed", key=Ed25519PrivateKey.generate())  # 3: another key
    _republish(sentiment_version, root, "unsigned")
    proc = ServerProcess(root, env={"TUNESERVE_VERIFY_KEY": str(public)})
    try:
        assert _classify(proc, "signed")
        for version, why in ((2, "is not signed"), (3, "does not verify")):
            with pytest.raises(grpc.RpcError) as info:
                request = model_pb2.SetServingVersionRequest(name="signed", version=version)
                proc.models.SetServingVersion(request)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert why in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            _classify(proc, "unsigned")
        assert "is not signed" in info.value.details()
        assert _classify(proc, "signed")
    finally:
        assert proc.stop() == 0


def test_versions_trained_by_a_server_with_a_training_signing_key_serve_under_its_verify_key(
    sentiment_version: Path, tiny_base: Path, tmp_path: Path
) -> None:
    key, private, public = ed25519_key_files(tmp_path)
    root = tmp_path / "models"
    _republish(sentiment_version, root, "signed", key=key)
    env = {"TUNESERVE_VERIFY_KEY": str(public), "TUNESERVE_TRAINING__SIGNING_KEY": str(private)}
    proc = ServerProcess(root, env=env)
    try:
        request = classification_request("signed", tiny_base, epochs=1)
        job = wait_job(proc, proc.training.Train(request).job.id)
        assert job.state == training_pb2.JOB_STATE_SUCCEEDED, job.error
        assert (root / "signed" / str(job.version) / "manifest.sig").is_file()
        proc.models.SetServingVersion(model_pb2.SetServingVersionRequest(name="signed", version=job.version))
        assert _classify(proc, "signed")
    finally:
        assert proc.stop() == 0


def test_a_verify_key_that_is_not_an_ed25519_public_key_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key\n")
    err = start_failure(tmp_path, "--verify-key", str(bad))
    assert "--verify-key" in err and "not a PEM public key" in err


_WRITER = textwrap.dedent(
    """
    import sys, time
    from tuneserve.localstore import LocalModelStore
    with LocalModelStore(sys.argv[1]).staging("s") as staged:
        (staged / "model.onnx").write_bytes(b"half")
        print(staged, flush=True)
        time.sleep(600)
    """
)


def test_start_up_flags_int8_files_for_other_cpus_and_cleans_only_dead_writers_folders(
    model_store: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    int8 = LocalModelStore(model_store).open_version("tiny-sentiment-int8").path
    foreign = "avx512-vnni" if is_arm64() else "arm64"
    _republish(int8, root, "s", target=foreign)
    _republish(int8, root, "portable", target="avx2" if not is_arm64() else "arm64")
    dead = root / "s" / ".tmp-dead"
    dead.mkdir()
    old = time.time() - STALE_STAGING_S - 1
    os.utime(dead, (old, old))
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        os.utime(live, (old, old))  # old, but its writer is alive
        proc = ServerProcess(root)
        try:
            assert _classify(proc, "s") and _classify(proc, "portable")
            warnings = [e for e in proc.events if e.get("event") == "int8 model made for other CPUs"]
            assert [(w["model"], w["target"], w["level"]) for w in warnings] == [("s", foreign, "warning")]
            assert warnings[0]["missing"]
            cleaned = "removed a dead writer's staging folder"
            removed = [e["path"] for e in proc.events if e.get("event") == cleaned]
            assert removed == [str(dead)]
        finally:
            assert proc.stop() == 0
        assert not dead.exists() and (live / "model.onnx").is_file()
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
