"""The model store: versioned model folders on disk, shared by the exporter (writer) and server (reader).

Layout::

    <root>/<name>/<version>/        integer versions, never reused, immutable once renamed into place
        manifest.json               task, labels, ONNX file served, metrics, checksums of every file
        manifest.sha256             sha256 of manifest.json's exact bytes (``sha256sum -c`` reads it)
        manifest.sig                optional: Ed25519 signature of that digest (see ``signing``)
        model.onnx, model_int8.onnx, tokenizer.json, config.json, ...
    <root>/<name>/serving.json      {"version": N}: the version served, replaced atomically
    <root>/<name>/last_version      highest version ever published, so deleted numbers are not reused
    <root>/<name>/.tmp-<uuid>/      a version being written; never loaded, removed by ``clean()``
        .writer.lock                flock-ed by the live writer, so ``clean()`` never removes its folder

A version is written into ``.tmp-<uuid>``, its checksums recorded in the manifest, the manifest's own
digest beside it, everything fsynced, and only then renamed to its number: a reader sees a whole folder or
none. ``open_version`` re-checks the manifest's digest (and signature, when the store has a key) and every
checksum, so a torn or tampered folder is refused with a clear error rather than served.

This module imports neither torch nor onnxruntime: the serving install and the trainer both use it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve import signing
from tuneserve.cpu import Int8Target

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
MANIFEST_SIGNATURE = "manifest.sig"
WRITER_LOCK = ".writer.lock"
PUBLISH_LOCK = ".publish.lock"
STALE_STAGING_S = 3600.0  # a staging folder untouched this long, with no live writer, is removed by clean()
_LOCKLESS_S = 60.0
_NOT_CHECKSUMMED = {MANIFEST, MANIFEST_DIGEST, MANIFEST_SIGNATURE, WRITER_LOCK}
SERVING = "serving.json"
LAST_VERSION = "last_version"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

Task = Literal["classification", "ner"]
Quantization = Literal["int8-dynamic", "int8-static", "fp16", "none"]
# How NER text becomes the words whose first sub-token is read, the same in training and serving:
# "tokenizer", the tokenizer's own normalizer and pre-tokenizer, which also split at punctuation (the default,
# and what versions exported before the field was recorded are served with); "whitespace", the words as
# given (tuneserve.encoding.split_words), for served text pre-tokenized like the training data.
Pretokenizer = Literal["whitespace", "tokenizer"]


class StoreError(Exception):
    """Base of the model store's errors."""


class ModelNotFoundError(StoreError):
    """No such model, or no such version of it."""


class IntegrityError(StoreError):
    """A version folder is incomplete or does not match its manifest's checksums."""


class InvalidNameError(StoreError):
    """A model name the store does not accept."""


class QuantizationInfo(BaseModel):
    """How the served ONNX file was made."""

    model_config = ConfigDict(frozen=True)
    requested: Quantization
    served: Quantization
    method: str = ""  # e.g. "dynamic int8, per-channel, avx512_vnni config"
    fallback_reason: str | None = None
    target: Int8Target | None = None  # the CPU instruction set an int8 file was made for


class Manifest(BaseModel):
    """What ``manifest.json`` holds; the server takes every fact it needs from here."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())
    schema_version: int = SCHEMA_VERSION
    name: str
    version: int = 0  # set by publish()
    task: Task
    multi_label: bool = False
    labels: list[str]
    max_length: int
    pretokenizer: Pretokenizer = "tokenizer"
    base_model: str
    onnx_file: str
    quantization: QuantizationInfo
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # file name -> sha256 hex digest
    package_versions: dict[str, str] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    parent: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    """A verified version folder."""

    path: Path
    manifest: Manifest

    @property
    def onnx_path(self) -> Path:
        return self.path / self.manifest.onnx_file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


class ModelStore:
    """Versioned model folders under one root directory.

    With ``verify_key`` (an Ed25519 public key), only versions signed by its private key open."""

    def __init__(self, root: str | Path, verify_key: Ed25519PublicKey | None = None) -> None:
        self.root = Path(root)
        self.verify_key = verify_key

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())

    def serving_version(self, name: str) -> int | None:
        path = self.root / name / SERVING
        if not path.exists():
            return None
        return int(json.loads(path.read_text())["version"])

    def set_serving_version(self, name: str, version: int) -> None:
        """Atomically make ``version`` (which must exist and verify) the serving one."""
        self.open_version(name, version)
        write_atomic(self.root / name / SERVING, json.dumps({"version": version}).encode())

    @contextlib.contextmanager
    def staging(self, name: str, tag: str | None = None) -> Iterator[Path]:
        """A fresh ``.tmp-<tag or uuid>`` folder to write a version into; removed if the block raises.

        The folder's ``.writer.lock`` stays locked (``flock``) until the block ends, so ``clean()`` in any
        process leaves it alone; the kernel releases the lock when the writer dies, however it dies.
        A known ``tag`` (a training job's id) lets whoever started the writer remove its folder after a
        crash: ``staging_path(name, tag)``."""
        path = self.staging_path(name, tag or uuid.uuid4().hex)
        path.mkdir(parents=True)
        lock = os.open(path / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock).st_nlink == 0:
            # A cleaner took the lock between our open and flock and removed the folder: start afresh.
            os.close(lock)
            with self.staging(name, tag) as fresh:
                yield fresh
            return
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            os.close(lock)

    def staging_path(self, name: str, tag: str) -> Path:
        return self.root / check_name(name) / f".tmp-{tag}"

    def publish(
        self,
        name: str,
        staged: Path,
        manifest: Manifest,
        *,
        serve_if_first: bool = True,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> int:
        """Checksum, fsync and rename a staged folder into the next version number; return it.

        The manifest is completed here (name, version, checksums of every file), its own sha256 written
        to ``manifest.sha256`` and, with ``signing_key``, that digest's signature to ``manifest.sig``. If
        the model had no serving version and ``serve_if_first`` is true, the new version becomes the
        serving one.
        """
        folder = self.root / check_name(name)
        files = sorted(
            p
            for p in staged.rglob("*")
            if p.is_file() and p.relative_to(staged).as_posix() not in _NOT_CHECKSUMMED
        )
        checksums = {p.relative_to(staged).as_posix(): sha256_file(p) for p in files}
        if manifest.onnx_file not in checksums:
            raise IntegrityError(f"staged folder has no {manifest.onnx_file}")
        # Number, rename and last_version under one lock, so concurrent publishers never pick one number.
        with _locked(folder / PUBLISH_LOCK):
            version = max([self._last_version(name), *self.versions(name)]) + 1
            final = manifest.model_copy(update={"name": name, "version": version, "files": checksums})
            data = final.model_dump_json(indent=2).encode()
            digest = hashlib.sha256(data).hexdigest()
            (staged / MANIFEST).write_bytes(data)
            (staged / MANIFEST_DIGEST).write_text(f"{digest}  {MANIFEST}\n")
            written = [*files, staged / MANIFEST, staged / MANIFEST_DIGEST]
            if signing_key is not None:
                signature = signing.sign_digest(signing_key, digest)
                (staged / MANIFEST_SIGNATURE).write_text(base64.b64encode(signature).decode() + "\n")
                written.append(staged / MANIFEST_SIGNATURE)
            for p in written:
                with p.open("rb") as f:
                    os.fsync(f.fileno())
            _fsync_dir(staged)
            os.rename(staged, folder / str(version))
            # Unlocked only once renamed: until then clean() sees a folder with a held lock.
            (folder / str(version) / WRITER_LOCK).unlink(missing_ok=True)
            _fsync_dir(folder / str(version))
            _fsync_dir(folder)
            write_atomic(folder / LAST_VERSION, str(version).encode())
        if serve_if_first and self.serving_version(name) is None:
            self.set_serving_version(name, version)
        return version

    def open_version(self, name: str, version: int | None = None) -> ModelVersion:
        """Load and verify a version (the serving one when ``version`` is None)."""
        if version is None:
            version = self.serving_version(name)
            if version is None:
                raise ModelNotFoundError(f"model {name!r} has no serving version under {self.root}")
        path = self.root / name / str(version)
        if not path.is_dir():
            known = ", ".join(map(str, self.versions(name))) or "none"
            raise ModelNotFoundError(f"model {name!r} has no version {version} (versions: {known})")
        try:
            return verify(path, self.verify_key)
        except (OSError, IntegrityError) as exc:
            if not path.is_dir():  # deleted (renamed away) while it was being read
                raise ModelNotFoundError(f"model {name!r} version {version} was just deleted") from exc
            if isinstance(exc, OSError):
                raise StoreError(f"version {version} of {name!r} could not be read: {exc}") from exc
            raise

    def delete_version(self, name: str, version: int) -> None:
        if self.serving_version(name) == version:
            raise StoreError(f"version {version} of {name!r} is serving; promote another version first")
        path = self.root / name / str(version)
        if not path.is_dir():
            raise ModelNotFoundError(f"model {name!r} has no version {version}")
        # Rename first so no reader ever sees a half-deleted folder under a version number.
        doomed = path.with_name(f".tmp-{uuid.uuid4().hex}")
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def clean(self, older_than_s: float = STALE_STAGING_S) -> list[Path]:
        """Remove the ``.tmp-*`` folders of dead writers; return what was removed.

        A folder goes only when nothing changed in it for ``older_than_s`` seconds AND no process holds
        its ``.writer.lock`` (a live writer always does); the lock is held while it is removed, so a
        writer cannot be starting in it. The age also guards file systems where ``flock`` does not
        reach other hosts.
        """
        removed = []
        now = time.time()
        for name in self.models():
            for path in (self.root / name).glob(".tmp-*"):
                with contextlib.suppress(OSError):  # gone meanwhile, or a read-only store
                    age = now - path.stat().st_mtime
                    if age >= older_than_s and _remove_unlocked(path, age):
                        removed.append(path)
        return removed

    def seal(
        self, name: str | None = None, signing_key: Ed25519PrivateKey | None = None
    ) -> list[tuple[str, int, str]]:
        """Record the missing ``manifest.sha256`` (and, with ``signing_key``, ``manifest.sig``) of versions
        published before manifests were covered. Returns ``(model, version, error)`` per version looked at
        (``error`` empty when it was sealed).

        Every file is checked against the manifest first, so only intact folders are sealed; the manifest
        itself is trusted as it stands (review its labels first). Covered versions are left alone.
        """
        results = []
        for model in [check_name(name)] if name else self.models():
            for version in self.versions(model):
                path = self.root / model / str(version)
                if (path / MANIFEST_DIGEST).exists():
                    continue
                digest = hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()
                write_atomic(path / MANIFEST_DIGEST, f"{digest}  {MANIFEST}\n".encode())
                try:
                    verify(path)
                except IntegrityError as exc:
                    (path / MANIFEST_DIGEST).unlink()
                    results.append((model, version, str(exc)))
                    continue
                if signing_key is not None:
                    signature = signing.sign_digest(signing_key, digest)
                    write_atomic(path / MANIFEST_SIGNATURE, base64.b64encode(signature) + b"\n")
                results.append((model, version, ""))
        return results

    def _last_version(self, name: str) -> int:
        path = self.root / name / LAST_VERSION
        return int(path.read_text()) if path.exists() else 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_unlocked(path: Path, age: float) -> bool:
    """Remove a staging folder unless its writer lock is held; whether it is gone.

    A folder without a lock file is a ``delete_version`` leftover, or a writer's in the instant between
    creating its folder and locking it: it goes only once older than ``_LOCKLESS_S``."""
    try:
        lock = os.open(path / WRITER_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        if age < _LOCKLESS_S:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    finally:
        os.close(lock)


def _manifest_digest(path: Path) -> str:
    """The digest recorded at publish time in ``manifest.sha256``."""
    try:
        recorded = (path / MANIFEST_DIGEST).read_text().split()
    except FileNotFoundError:
        raise IntegrityError(
            f"{path} has no {MANIFEST_DIGEST}: its manifest is not covered by a checksum (published by an "
            "older tuneserve, or removed); check its labels, then `tuneserve seal`, or export it again"
        ) from None
    if len(recorded) != 2 or recorded[1] != MANIFEST or not re.fullmatch(r"[0-9a-f]{64}", recorded[0]):
        raise IntegrityError(f"{path / MANIFEST_DIGEST} is not '<sha256 hex>  {MANIFEST}'")
    return recorded[0]


def _check_signature(path: Path, digest: str, key: Ed25519PublicKey) -> None:
    try:
        signature = base64.b64decode((path / MANIFEST_SIGNATURE).read_text().strip(), validate=True)
    except FileNotFoundError:
        raise IntegrityError(
            f"{path} is not signed ({MANIFEST_SIGNATURE} is missing) and this store requires signed versions"
        ) from None
    except ValueError as exc:
        raise IntegrityError(f"{path / MANIFEST_SIGNATURE} is not base64: {exc}") from exc
    if not signing.signature_matches(key, digest, signature):
        raise IntegrityError(f"{path}: {MANIFEST_SIGNATURE} does not verify with the configured public key")


def verify(path: Path, verify_key: Ed25519PublicKey | None = None) -> ModelVersion:
    """Read a version folder's manifest, check its digest (and signature, with ``verify_key``) and every
    file's sha256; raise IntegrityError if anything is off."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError(f"{path} has no {MANIFEST}: not a complete model version")
    data = manifest_path.read_bytes()  # checked and parsed from the same bytes
    recorded = _manifest_digest(path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise IntegrityError(
            f"{path}: {MANIFEST} was changed after publishing (its sha256 is {actual[:12]}…, "
            f"{MANIFEST_DIGEST} says {recorded[:12]}…)"
        )
    if verify_key is not None:
        _check_signature(path, recorded, verify_key)
    try:
        manifest = Manifest.model_validate_json(data)
    except ValueError as exc:
        raise IntegrityError(f"{manifest_path} is not a valid manifest: {exc}") from exc
    if manifest.schema_version != SCHEMA_VERSION:
        raise IntegrityError(
            f"{manifest_path} has schema_version {manifest.schema_version}; this tuneserve reads "
            f"{SCHEMA_VERSION}"
        )
    if not manifest.files:
        raise IntegrityError(f"{manifest_path} lists no files")
    for rel, expected in manifest.files.items():
        file = path / rel
        if not file.is_file():
            raise IntegrityError(f"{path}: {rel} is missing")
        actual = sha256_file(file)
        if actual != expected:
            raise IntegrityError(
                f"{path}: checksum mismatch for {rel} (manifest {expected[:12]}…, file {actual[:12]}…)"
            )
    return ModelVersion(path=path, manifest=manifest)
