"""The model store: versioned model folders on disk, shared by the exporter (writer) and server (reader).

Layout::

    <root>/<name>/<version>/        integer versions, never reused, immutable once renamed into place
        manifest.json               task, labels, ONNX file served, metrics, checksums of every file
        model.onnx, model_int8.onnx, tokenizer.json, config.json, ...
    <root>/<name>/serving.json      {"version": N}: the version served, replaced atomically
    <root>/<name>/last_version      highest version ever published, so deleted numbers are not reused
    <root>/<name>/.tmp-<uuid>/      a version being written; never loaded, removed by ``clean()``

A version is written into ``.tmp-<uuid>``, its checksums recorded in the manifest, everything fsynced,
and only then renamed to its number: a reader sees a whole folder or none. ``open_version`` re-checks
every checksum, so a torn or tampered folder is refused with a clear error rather than served.

This module imports neither torch nor onnxruntime: the serving install and the trainer both use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SERVING = "serving.json"
LAST_VERSION = "last_version"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

Task = Literal["classification", "ner"]
Quantization = Literal["int8-dynamic", "int8-static", "fp16", "none"]
# How served NER text becomes the words whose first sub-token is read: "whitespace" as in training data
# (tuneserve.encoding.split_words); "tokenizer": the tokenizer's own pre-tokenizer, which also splits at
# punctuation (versions exported before the field was recorded).
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
    """Versioned model folders under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

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

        A known ``tag`` (a training job's id) lets whoever started the writer remove its folder after a
        crash: ``staging_path(name, tag)``."""
        path = self.staging_path(name, tag or uuid.uuid4().hex)
        path.mkdir(parents=True)
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def staging_path(self, name: str, tag: str) -> Path:
        return self.root / check_name(name) / f".tmp-{tag}"

    def publish(self, name: str, staged: Path, manifest: Manifest, *, serve_if_first: bool = True) -> int:
        """Checksum, fsync and rename a staged folder into the next version number; return it.

        The manifest is completed here (name, version, checksums of every file). If the model had no
        serving version and ``serve_if_first`` is true, the new version becomes the serving one.
        """
        folder = self.root / check_name(name)
        files = sorted(p for p in staged.rglob("*") if p.is_file() and p.name != MANIFEST)
        checksums = {p.relative_to(staged).as_posix(): sha256_file(p) for p in files}
        if manifest.onnx_file not in checksums:
            raise IntegrityError(f"staged folder has no {manifest.onnx_file}")
        version = max([self._last_version(name), *self.versions(name)]) + 1
        final = manifest.model_copy(update={"name": name, "version": version, "files": checksums})
        (staged / MANIFEST).write_text(final.model_dump_json(indent=2))
        for p in [*files, staged / MANIFEST]:
            with p.open("rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(staged)
        os.rename(staged, folder / str(version))
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
        return verify(path)

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

    def clean(self) -> list[Path]:
        """Remove leftover ``.tmp-*`` folders of interrupted writes; return what was removed."""
        removed = []
        for name in self.models():
            for p in (self.root / name).glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    def _last_version(self, name: str) -> int:
        path = self.root / name / LAST_VERSION
        return int(path.read_text()) if path.exists() else 0


def verify(path: Path) -> ModelVersion:
    """Read a version folder's manifest and check every file's sha256; raise IntegrityError if off."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError(f"{path} has no {MANIFEST}: not a complete model version")
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_text())
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
