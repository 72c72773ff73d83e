"""The model store's local backend: version folders under one directory (the layout is described in
``tuneserve.repository``). Atomicity comes from ``rename``, numbering from an ``flock``-ed counter."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tuneserve import signing
from tuneserve.repository import (
    _LOCKLESS_S,
    _NAME,
    _NOT_CHECKSUMMED,
    LAST_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_SIGNATURE,
    PUBLISH_LOCK,
    SERVING,
    STALE_STAGING_S,
    WRITER_LOCK,
    IntegrityError,
    Manifest,
    ModelNotFoundError,
    ModelStore,
    ModelVersion,
    StoreError,
    check_name,
    sha256_file,
    verify,
    verify_manifest,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class LocalModelStore(ModelStore):
    """Versioned model folders under one local root directory.

    With ``verify_key`` (an Ed25519 public key), only versions signed by its private key open."""

    def __init__(self, root: str | Path, verify_key: Ed25519PublicKey | None = None) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self.verify_key = verify_key

    def models(self, max_age_s: float = 0.0) -> list[str]:
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
        """Atomically make ``version`` (which must exist and verify) the serving one. Writers of the
        record are serialized by the model's publish lock, so none is lost."""
        self.open_version(name, version)
        with _locked(self.root / name / PUBLISH_LOCK):
            write_atomic(self.root / name / SERVING, json.dumps({"version": version}).encode())

    def fingerprint(self, name: str, version: int) -> tuple[tuple[str, int, int], ...]:
        """Path, size and modification time of the version's files and the serving record."""
        folder = self.root / name
        found = []
        for path in [folder / SERVING, *sorted((folder / str(version)).rglob("*"))]:
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((os.fspath(path.relative_to(folder)), st.st_size, st.st_mtime_ns))
        return tuple(found)

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

    def read_manifest(self, name: str, version: int) -> Manifest:
        path = self.root / check_name(name) / str(version)
        try:
            return verify_manifest(path, self.verify_key)
        except (OSError, IntegrityError) as exc:
            if not path.is_dir():
                raise ModelNotFoundError(f"model {name!r} has no version {version}") from exc
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
