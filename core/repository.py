"""The model store: versioned, verified model folders, shared by the exporter and trainer (writers) and the
server (reader). ``ModelStore`` is the one interface; ``open_store`` picks its backend from the root: a local
folder (``tuneserve.localstore``) or ``s3://BUCKET/PREFIX`` in S3-compatible object storage
(``tuneserve.s3store``). Both keep the same layout and the same guarantees.

Layout (local; the S3 backend keeps the same keys under its prefix, see ``tuneserve.s3store``)::

    <root>/<name>/<version>/        integer versions, never reused, immutable once renamed into place
        manifest.json               task, labels, ONNX file served, metrics, lineage, checksums of every file
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
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve import signing
from tuneserve.cpu import Int8Target
from tuneserve.lineage import Lineage

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
    # What the version was trained from (tuneserve.lineage); None in manifests written before it was recorded.
    lineage: Lineage | None = None


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


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


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
    manifest = verify_manifest(path, verify_key)
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


def verify_manifest(path: Path, verify_key: Ed25519PublicKey | None = None) -> Manifest:
    """The manifest of the version folder ``path``, its digest (and signature) checked; not its files."""
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
    return manifest


# -- the interface ------------------------------------------------------------------------------------


class ConflictError(StoreError):
    """Another writer changed the same record at the same time (a lost compare-and-set); read and retry."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached (an object store that is down or unreachable)."""


DEFAULT_CACHE_MAX_BYTES = 10 * 1024**3
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def default_cache_dir() -> Path:
    """``TUNESERVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tuneserve/models`` (``~/.cache`` by default)."""
    if configured := os.environ.get("TUNESERVE_CACHE_DIR"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tuneserve" / "models"


def parse_root(root: str | Path) -> str:
    """A model root as given, checked: a local folder, or ``s3://BUCKET[/PREFIX]``. Anything else with a
    scheme (``gs://``, ``s3:/one-slash``) is refused, never taken for a local folder of that name."""
    text = os.fspath(root)
    if not (match := _SCHEME.match(text)):
        return text
    if match.group(1) == "s3" and re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)", text):
        return text
    if match.group(1) == "s3":
        raise StoreError(f"model root {text!r} is not s3://BUCKET/PREFIX (a valid bucket name after s3://)")
    raise StoreError(
        f"model root {text!r} has the scheme {match.group(1)!r}, which tuneserve does not read: use a local "
        "folder or s3://BUCKET/PREFIX (S3-compatible stores such as MinIO, Ceph, R2 and GCS's XML API are "
        "reached through AWS_ENDPOINT_URL)"
    )


class StoreConfig(BaseModel):
    """Where a store is, and how an object store's versions are cached locally (passed to job processes)."""

    model_config = ConfigDict(frozen=True)
    root: str
    cache_dir: Path | None = None  # None: default_cache_dir()
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES


class ModelStore(ABC):
    """Versioned models under one root. Every version is immutable once published; readers see whole
    versions only, version numbers are never reused, and ``open_version`` verifies checksums (and the
    signature, with ``verify_key``) before it hands back a local folder.

    With ``verify_key`` (an Ed25519 public key), only versions signed by its private key open."""

    url: str  # where the store is, for messages
    verify_key: Ed25519PublicKey | None

    @abstractmethod
    def models(self, max_age_s: float = 0.0) -> list[str]:
        """Model names, sorted; a listing up to ``max_age_s`` old will do (an object store keeps one, so
        that polls do not list the bucket each time)."""

    @abstractmethod
    def versions(self, name: str) -> list[int]:
        """Whole (published) versions of ``name``, sorted."""

    @abstractmethod
    def serving_version(self, name: str) -> int | None:
        """The version the model's serving record names (None if it has none)."""

    @abstractmethod
    def set_serving_version(self, name: str, version: int) -> None:
        """Atomically make ``version`` (which must exist and verify) the serving one. Raises
        ``ConflictError`` if another writer replaced the record between our read and our write."""

    @abstractmethod
    def open_version(self, name: str, version: int | None = None) -> ModelVersion:
        """Verify a version (the serving one when ``version`` is None) and return its local folder."""

    @abstractmethod
    def read_manifest(self, name: str, version: int) -> Manifest:
        """A version's manifest, its digest (and signature) checked, without reading or fetching its files
        (what listings show)."""

    @abstractmethod
    def delete_version(self, name: str, version: int) -> None:
        """Remove a version that is not serving; readers see it whole or absent."""

    @abstractmethod
    def staging(self, name: str, tag: str | None = None) -> contextlib.AbstractContextManager[Path]:
        """A fresh local folder to write a version into, for ``publish``; removed if the block raises.
        A known ``tag`` (a training job's id) lets whoever started the writer remove it after a crash."""

    @abstractmethod
    def staging_path(self, name: str, tag: str) -> Path:
        """The local staging folder of ``tag`` (see ``staging``)."""

    @abstractmethod
    def publish(
        self,
        name: str,
        staged: Path,
        manifest: Manifest,
        *,
        serve_if_first: bool = True,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> int:
        """Checksum a staged folder and publish it as the next version number; return the number.

        The manifest is completed here (name, version, checksums of every file), its own sha256 written
        to ``manifest.sha256`` and, with ``signing_key``, that digest's signature to ``manifest.sig``. If
        the model had no serving version and ``serve_if_first`` is true, the new version becomes the
        serving one."""

    @abstractmethod
    def clean(self, older_than_s: float = STALE_STAGING_S) -> Sequence[str | Path]:
        """Remove what dead writers left (staging folders, unpublished uploads); return what went."""

    @abstractmethod
    def fingerprint(self, name: str, version: int) -> Hashable:
        """Changes when the version's files or the model's serving record change (to retry a failed
        load only then)."""

    def seal(
        self, name: str | None = None, signing_key: Ed25519PrivateKey | None = None
    ) -> list[tuple[str, int, str]]:
        """Cover manifests published before ``manifest.sha256`` existed (local stores only)."""
        raise StoreError(f"{self.url} needs no sealing: every version published there has its digest")

    @contextlib.contextmanager
    def cached_reads(self) -> Iterator[None]:
        """Within the block, reads that the store cannot answer because it is unreachable are answered
        from the local cache where it holds them (a server starting while its object store is down)."""
        yield


def open_store(root: str | Path | StoreConfig, verify_key: Ed25519PublicKey | None = None) -> ModelStore:
    """The store at ``root``: a local folder, or ``s3://BUCKET/PREFIX`` (endpoint, region and credentials
    from the standard AWS chain: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, profiles, web identity...)."""
    config = root if isinstance(root, StoreConfig) else StoreConfig(root=os.fspath(root))
    location = parse_root(config.root)
    if location.startswith("s3://"):
        from tuneserve.s3store import S3ModelStore  # boto3 is imported only for object stores

        return S3ModelStore(
            location,
            verify_key=verify_key,
            cache_dir=config.cache_dir or default_cache_dir(),
            cache_max_bytes=config.cache_max_bytes,
        )
    from tuneserve.localstore import LocalModelStore

    return LocalModelStore(location, verify_key=verify_key)
