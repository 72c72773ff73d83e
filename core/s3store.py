"""The model store's object-storage backend: ``s3://BUCKET/PREFIX`` on AWS S3 or any S3-compatible server
(MinIO, Ceph RGW, Cloudflare R2, GCS's XML API).

boto3 rather than s3fs or obstore: it exposes S3's conditional writes (``IfNoneMatch``/``IfMatch`` on
PutObject), which publishing and promotion rest on; it follows the standard AWS chain (``AWS_*`` variables,
profiles, web identity on Kubernetes) with no glue; and s3transfer moves large files in parallel parts.

Keys under PREFIX keep the local layout::

    <name>/last_version             highest number handed out, replaced with If-Match on its ETag (a
                                    compare-and-set): two publishers never get one number, and deleted
                                    numbers are never handed out again
    <name>/<version>/...            the version's files, uploaded first
    <name>/<version>/manifest.json  written last, with If-None-Match: * -- the version exists once it does
    <name>/serving.json             {"version": N}, replaced with If-Match on the ETag just read

Objects under a number without ``manifest.json`` are a writer's uploads in progress, or a dead writer's:
never read, and removed by ``clean()`` once untouched for ``STALE_STAGING_S``.

Readers download a version into the local ``VersionCache`` (files in parallel), verify every checksum there
as for a local folder, and only then use it; versions are immutable, so a verified cached copy is used
again without touching the bucket. Polls cost one conditional GET per serving record (304 when unchanged);
the poller asks for the model list with ``max_age_s``, so the bucket is listed only that often.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from tuneserve import signing
from tuneserve.localstore import LocalModelStore
from tuneserve.objects import TRANSFER_THREADS, s3_client
from tuneserve.repository import (
    _NAME,
    _NOT_CHECKSUMMED,
    LAST_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_SIGNATURE,
    SERVING,
    STALE_STAGING_S,
    WRITER_LOCK,
    ConflictError,
    IntegrityError,
    Manifest,
    ModelNotFoundError,
    ModelStore,
    ModelVersion,
    StoreError,
    StoreUnavailableError,
    check_name,
    sha256_file,
    verify,
    verify_manifest,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = structlog.get_logger("tuneserve.s3store")
_NUMBER_TRIES = 50
_NOT_MODIFIED = object()
# Set by cached_reads(): reads the store cannot answer fall back to the cache, in that context only (the
# poller's own reads, in another task, still fail and are counted).
_OFFLINE_OK: contextvars.ContextVar[bool] = contextvars.ContextVar("tuneserve_offline_ok", default=False)


class S3ModelStore(ModelStore):
    """Versioned models under ``s3://BUCKET/PREFIX``, read through a local cache (see the module)."""

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,
        cache_max_bytes: int,
        verify_key: Ed25519PublicKey | None = None,
        client: Any = None,
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.verify_key = verify_key
        self._s3 = client or s3_client()
        where = cache_dir / "s3" / bucket / (self.prefix.strip("/") or "_")
        self.cache = VersionCache(where, cache_max_bytes)
        self._staging = LocalModelStore(self.cache.root / "staging")
        self._records: dict[str, tuple[int, str]] = {}  # model -> (serving version, ETag) last read
        self._models: tuple[float, list[str]] | None = None
        self._downloads: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------

    def models(self, max_age_s: float = 0.0) -> list[str]:
        now = time.monotonic()
        if self._models is not None and now - self._models[0] < max_age_s:
            return list(self._models[1])
        try:
            names = sorted(
                found
                for common in self._list(self.prefix, delimiter="/", key="CommonPrefixes")
                if _NAME.match(found := common["Prefix"][len(self.prefix) :].rstrip("/"))
            )
        except StoreUnavailableError:
            names = self.cache.models() if _OFFLINE_OK.get() else []
            if not names:  # start only from a cache that holds serving versions
                raise
            log.warning("object store unreachable: starting from the cache", store=self.url, models=names)
        self._models = (now, names)
        return list(names)

    def versions(self, name: str) -> list[int]:
        try:
            return sorted(self._listed_versions(name)[0])
        except StoreUnavailableError:
            if not _OFFLINE_OK.get():
                raise
            return self.cache.versions(name)

    def serving_version(self, name: str) -> int | None:
        record = self._records.get(name)
        try:
            got = self._get(self._key(name, SERVING), if_none_match=record[1] if record else None)
        except StoreUnavailableError:
            cached = self.cache.load_record(name) if _OFFLINE_OK.get() else None
            if cached is None:
                raise
            log.warning("object store unreachable: serving the cached record", model=name, version=cached)
            return cached
        if got is _NOT_MODIFIED and record is not None:
            return record[0]
        if got is None:
            self._records.pop(name, None)
            return None
        body, etag = got
        version = int(json.loads(body)["version"])
        self._records[name] = (version, etag)
        self.cache.save_record(name, version)
        return version

    def open_version(self, name: str, version: int | None = None) -> ModelVersion:
        if version is None:
            version = self.serving_version(name)
            if version is None:
                raise ModelNotFoundError(f"model {name!r} has no serving version under {self.url}")
        check_name(name)
        with self._download_lock(name, version):
            cached = self.cache.lookup(name, version)
            if cached is not None:
                try:
                    return verify(cached, self.verify_key)
                except IntegrityError as exc:  # a damaged cache is fetched again, never served
                    log.warning("cached version damaged: downloading it again", model=name, error=str(exc))
                    self.cache.remove(name, version)
            with self.cache.filling(name, version) as folder:
                self._download(name, version, folder)
                try:
                    opened = verify(folder, self.verify_key)
                except IntegrityError as exc:  # named by where it is, not by the download folder
                    where = f"{self.url}/{name}/{version}"
                    raise IntegrityError(str(exc).replace(str(folder), where)) from exc
            self.cache.evict(keep=self._in_use(name, version))
        return ModelVersion(path=self.cache.folder(name, version), manifest=opened.manifest)

    def read_manifest(self, name: str, version: int) -> Manifest:
        check_name(name)
        cached = self.cache.lookup(name, version)
        if cached is not None:
            with contextlib.suppress(IntegrityError):
                return verify_manifest(cached, self.verify_key)
        with tempfile.TemporaryDirectory(dir=self.cache.scratch()) as tmp:
            self._download(name, version, Path(tmp), files=False)
            try:
                return verify_manifest(Path(tmp), self.verify_key)
            except IntegrityError as exc:
                raise IntegrityError(str(exc).replace(tmp, f"{self.url}/{name}/{version}")) from exc

    def fingerprint(self, name: str, version: int) -> tuple[tuple[str, str], ...]:
        """Keys and ETags of the version's objects and of the serving record."""
        found = [
            (obj["Key"], obj["ETag"]) for obj in self._list(self._key(name, f"{version}/"), key="Contents")
        ]
        with contextlib.suppress(StoreError):
            got = self._get(self._key(name, SERVING))
            if got is not None and got is not _NOT_MODIFIED:
                found.append((SERVING, got[1]))
        return tuple(found)

    @contextlib.contextmanager
    def cached_reads(self) -> Iterator[None]:
        token = _OFFLINE_OK.set(True)  # a context variable: only this task (and its to_thread calls)
        try:
            yield
        finally:
            _OFFLINE_OK.reset(token)

    # -- writing ---------------------------------------------------------------------------------------

    def set_serving_version(self, name: str, version: int) -> None:
        self.open_version(name, version)  # it must exist and verify
        self._replace_record(name, version, only_if_absent=False)

    def staging(self, name: str, tag: str | None = None) -> contextlib.AbstractContextManager[Path]:
        return self._staging.staging(name, tag)

    def staging_path(self, name: str, tag: str) -> Path:
        return self._staging.staging_path(name, tag)

    def publish(
        self,
        name: str,
        staged: Path,
        manifest: Manifest,
        *,
        serve_if_first: bool = True,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> int:
        check_name(name)
        files = sorted(
            p
            for p in staged.rglob("*")
            if p.is_file() and p.relative_to(staged).as_posix() not in _NOT_CHECKSUMMED
        )
        checksums = {p.relative_to(staged).as_posix(): sha256_file(p) for p in files}
        if manifest.onnx_file not in checksums:
            raise IntegrityError(f"staged folder has no {manifest.onnx_file}")
        version = self._next_version(name)
        final = manifest.model_copy(update={"name": name, "version": version, "files": checksums})
        data = final.model_dump_json(indent=2).encode()
        digest = hashlib.sha256(data).hexdigest()
        (staged / MANIFEST).write_bytes(data)
        (staged / MANIFEST_DIGEST).write_text(f"{digest}  {MANIFEST}\n")
        covers = [*files, staged / MANIFEST_DIGEST]
        if signing_key is not None:
            signature = signing.sign_digest(signing_key, digest)
            (staged / MANIFEST_SIGNATURE).write_text(base64.b64encode(signature).decode() + "\n")
            covers.append(staged / MANIFEST_SIGNATURE)
        uploads = {self._key(name, f"{version}/{p.relative_to(staged).as_posix()}"): p for p in covers}
        try:
            self._parallel(lambda key: self._upload(uploads[key], key), list(uploads))
            # The commit point: the version exists from here on, whole.
            self._put(self._key(name, f"{version}/{MANIFEST}"), data, if_none_match="*")
        except BaseException as exc:
            with contextlib.suppress(StoreError):  # leftovers are removed by clean() otherwise
                self._delete_keys(list(uploads))
            if isinstance(exc, ConflictError):
                raise ConflictError(
                    f"version {version} of {name!r} was published by another writer: nothing was overwritten"
                ) from exc
            raise
        self._models = None
        (staged / WRITER_LOCK).unlink(missing_ok=True)
        self.cache.adopt(name, version, staged)  # the writer's own copy: no download to serve it here
        if serve_if_first and self.serving_version(name) is None:
            with contextlib.suppress(ConflictError):  # a concurrent first publisher's version serves
                self._replace_record(name, version, only_if_absent=True)
        return version

    def delete_version(self, name: str, version: int) -> None:
        if self.serving_version(name) == version:
            raise StoreError(f"version {version} of {name!r} is serving; promote another version first")
        listed, keys = self._listed_versions(name)
        if version not in listed:
            raise ModelNotFoundError(f"model {name!r} has no version {version}")
        # The manifest first, so readers see the version whole or absent, never half deleted.
        self._delete_keys([self._key(name, f"{version}/{MANIFEST}")])
        self._delete_keys([k for k in keys.get(version, []) if not k.endswith(f"/{MANIFEST}")])
        self.cache.remove(name, version)
        self._models = None

    def clean(self, older_than_s: float = STALE_STAGING_S) -> list[str | Path]:
        """Remove local staging folders of dead writers, and uploads under a number that never got a
        manifest and have been untouched for ``older_than_s``."""
        removed: list[str | Path] = list(self._staging.clean(older_than_s))
        now = time.time()
        for name in self.models():
            newest: dict[int, float] = {}
            keys: dict[int, list[str]] = {}
            published: set[int] = set()
            for obj in self._list(self._key(name, ""), key="Contents"):
                match = re.match(r"(\d+)/(.+)$", obj["Key"][len(self._key(name, "")) :])
                if not match:
                    continue
                number = int(match.group(1))
                keys.setdefault(number, []).append(obj["Key"])
                newest[number] = max(newest.get(number, 0.0), obj["LastModified"].timestamp())
                if match.group(2) == MANIFEST:
                    published.add(number)
            for number, objects in keys.items():
                if number not in published and now - newest[number] >= older_than_s:
                    self._delete_keys(objects)
                    removed.append(f"{self.url}/{name}/{number}/")
        return removed

    # -- internals -------------------------------------------------------------------------------------

    def _key(self, name: str, rest: str) -> str:
        return f"{self.prefix}{name}/{rest}"

    def _in_use(self, name: str, version: int) -> set[tuple[str, int]]:
        return {(model, record[0]) for model, record in self._records.items()} | {(name, version)}

    def _download_lock(self, name: str, version: int) -> threading.Lock:
        with self._lock:
            return self._downloads.setdefault((name, version), threading.Lock())

    def _listed_versions(self, name: str) -> tuple[set[int], dict[int, list[str]]]:
        """Published version numbers, and every key under each number."""
        base = self._key(name, "")
        published: set[int] = set()
        keys: dict[int, list[str]] = {}
        for obj in self._list(base, key="Contents"):
            match = re.match(r"(\d+)/(.+)$", obj["Key"][len(base) :])
            if match:
                keys.setdefault(int(match.group(1)), []).append(obj["Key"])
                if match.group(2) == MANIFEST:
                    published.add(int(match.group(1)))
        return published, keys

    def _next_version(self, name: str) -> int:
        """Take the next number with a compare-and-set on ``last_version``."""
        key = self._key(name, LAST_VERSION)
        listed = max(self._listed_versions(name)[0], default=0)
        for _ in range(_NUMBER_TRIES):
            got = self._get(key)
            last = int(got[0]) if got is not None and got is not _NOT_MODIFIED else 0
            number = max(last, listed) + 1
            try:
                if got is None:
                    self._put(key, str(number).encode(), if_none_match="*")
                else:
                    self._put(key, str(number).encode(), if_match=got[1])
            except ConflictError:
                continue  # another publisher took it: read again
            return number
        raise ConflictError(f"no version number for {name!r} after {_NUMBER_TRIES} tries: too many writers")

    def _replace_record(self, name: str, version: int, only_if_absent: bool) -> None:
        """Write the serving record with If-Match on the ETag just read (If-None-Match when absent)."""
        key = self._key(name, SERVING)
        body = json.dumps({"version": version}).encode()
        got = None if only_if_absent else self._get(key)
        try:
            if got is None:
                etag = self._put(key, body, if_none_match="*")
            else:
                etag = self._put(key, body, if_match=got[1])
        except ConflictError as exc:
            raise ConflictError(
                f"the serving version of {name!r} was changed by another writer at the same moment; "
                "nothing was overwritten: read it again (GetModel) and retry"
            ) from exc
        self._records[name] = (version, etag)
        self.cache.save_record(name, version)

    def _download(self, name: str, version: int, folder: Path, files: bool = True) -> None:
        """The version's manifest (missing: no such version), then its files in parallel."""
        try:
            self._fetch(self._key(name, f"{version}/{MANIFEST}"), folder / MANIFEST)
        except ModelNotFoundError:
            known = ", ".join(map(str, self.versions(name))) or "none"
            raise ModelNotFoundError(f"model {name!r} has no version {version} (versions: {known})") from None
        for extra in (MANIFEST_DIGEST, MANIFEST_SIGNATURE):
            with contextlib.suppress(ModelNotFoundError):  # verify() says what is missing
                self._fetch(self._key(name, f"{version}/{extra}"), folder / extra)
        if not files:
            return
        try:
            listed = json.loads((folder / MANIFEST).read_bytes()).get("files", {})
        except ValueError as exc:
            raise IntegrityError(f"{self.url}/{name}/{version}/{MANIFEST} is not JSON: {exc}") from exc
        for rel in listed:
            pure = PurePosixPath(rel)
            if pure.is_absolute() or ".." in pure.parts or rel in _NOT_CHECKSUMMED:
                where = f"{self.url}/{name}/{version}/{MANIFEST}"
                raise IntegrityError(f"{where} names a file outside its version: {rel!r}")
        self._parallel(
            lambda rel: self._fetch(self._key(name, f"{version}/{rel}"), folder / rel, missing_ok=True),
            list(listed),
        )

    def _parallel(self, action: Callable[[str], None], items: list[str]) -> None:
        with ThreadPoolExecutor(min(TRANSFER_THREADS, max(1, len(items)))) as pool:
            for future in [pool.submit(action, item) for item in items]:
                future.result()

    # -- S3 calls, errors mapped to the store's ----------------------------------------------------------

    def _get(self, key: str, if_none_match: str | None = None) -> Any:
        """``(body, etag)``, None if absent, or ``_NOT_MODIFIED`` when ``if_none_match`` still matches."""
        extra = {"IfNoneMatch": if_none_match} if if_none_match else {}
        try:
            with self._errors(f"reading {key}"):
                reply = self._s3.get_object(Bucket=self.bucket, Key=key, **extra)
                return reply["Body"].read(), reply["ETag"]
        except _NotModified:
            return _NOT_MODIFIED
        except ModelNotFoundError:
            return None

    def _put(
        self, key: str, body: bytes, if_match: str | None = None, if_none_match: str | None = None
    ) -> str:
        extra = {"IfMatch": if_match} if if_match else {}
        if if_none_match:
            extra["IfNoneMatch"] = if_none_match
        with self._errors(f"writing {key}"):
            return str(self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)["ETag"])

    def _upload(self, path: Path, key: str) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:
            with self._errors(f"uploading {key}"):
                self._s3.upload_file(str(path), self.bucket, key)
        except S3UploadFailedError as exc:  # s3transfer's wrapper names the local file: keep only S3's reason
            reason = str(exc).rsplit(": ", 1)[-1] if ": " in str(exc) else str(exc)
            cause = exc.__cause__ or exc.__context__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause else ""
            raise StoreError(f"uploading s3://{self.bucket}/{key} failed: {code} {reason}".strip()) from exc

    def _fetch(self, key: str, path: Path, missing_ok: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._errors(f"downloading {key}"):
                self._s3.download_file(self.bucket, key, str(path))
        except ModelNotFoundError:
            if not missing_ok:
                raise
            # verify() reports the missing file by name

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            if batch:
                with self._errors("deleting objects"):
                    self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _list(self, prefix: str, key: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        extra = {"Delimiter": delimiter} if delimiter else {}
        with self._errors(f"listing {self.bucket}/{prefix}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, **extra
            )
            items = [item for page in pages for item in page.get(key, [])]
        return iter(items)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """botocore's exceptions as the store's: ModelNotFoundError (404), ConflictError (412/409),
        StoreUnavailableError (unreachable), StoreError (anything else, with S3's code)."""
        from botocore import exceptions as bx

        try:
            yield
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 304 or code in ("304", "NotModified"):
                raise _NotModified from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ModelNotFoundError(f"{what}: no such object") from None
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ConflictError(f"{what}: changed by another writer ({code})") from exc
            if code == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist ({self.url})") from exc
            message = f"{code} {error.get('Message', '')}".strip()
            raise StoreError(f"{what} in {self.url} failed: {message}") from exc
        except bx.NoCredentialsError as exc:
            raise StoreError(
                f"no AWS credentials for {self.url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a "
                "profile (AWS_PROFILE), or web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)"
            ) from exc
        except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ConnectTimeoutError) as exc:
            raise StoreUnavailableError(f"{what}: the object store cannot be reached ({exc})") from exc
        except (bx.ReadTimeoutError, bx.ResponseStreamingError) as exc:
            raise StoreUnavailableError(f"{what}: the object store stopped answering ({exc})") from exc
        except bx.BotoCoreError as exc:
            raise StoreError(f"{what} in {self.url} failed: {exc}") from exc


class _NotModified(Exception):
    """A conditional GET found the object unchanged (HTTP 304)."""


class VersionCache:
    """Versions downloaded from one object store, under ``root``:

    - ``versions/<name>/<version>/``: a complete folder (renamed into place once downloaded and verified);
      its modification time records its last use;
    - ``serving/<name>``: the last serving version read, so a server can start while the store is down;
    - ``staging/``: local folders that writers build versions in before uploading.

    Kept under ``max_bytes`` by evicting the least recently used versions not being served. A version
    larger than the whole cache is still kept while it serves (logged)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def folder(self, name: str, version: int) -> Path:
        return self.root / "versions" / name / str(version)

    def scratch(self) -> Path:
        """A folder for short-lived downloads (manifests read for listings)."""
        path = self.root / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def lookup(self, name: str, version: int) -> Path | None:
        folder = self.folder(name, version)
        if not (folder / MANIFEST).is_file():
            return None
        with contextlib.suppress(OSError):
            os.utime(folder)
        return folder

    @contextlib.contextmanager
    def filling(self, name: str, version: int) -> Iterator[Path]:
        """A fresh folder to download into; renamed into place if the block succeeds, else removed."""
        tmp = self.root / "versions" / name / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            self._install(tmp, self.folder(name, version))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def adopt(self, name: str, version: int, folder: Path) -> None:
        """Take a just-published folder as the cached copy of ``version``."""
        with contextlib.suppress(OSError):  # only a cache: a failure costs a download later
            self._install(folder, self.folder(name, version))

    def _install(self, source: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent download of the same version
                raise

    def remove(self, name: str, version: int) -> None:
        folder = self.folder(name, version)
        doomed = folder.with_name(f".tmp-{uuid.uuid4().hex}")
        with contextlib.suppress(OSError):
            os.rename(folder, doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def evict(self, keep: set[tuple[str, int]]) -> None:
        """Remove least recently used versions not in ``keep`` until the cache fits ``max_bytes``."""
        entries = []
        for folder in (self.root / "versions").glob("*/[0-9]*"):
            with contextlib.suppress(OSError, ValueError):
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                entries.append((folder.stat().st_mtime, folder.parent.name, int(folder.name), size))
        total = sum(size for *_, size in entries)
        for _, name, version, size in sorted(entries):
            if total <= self.max_bytes:
                return
            if (name, version) in keep:
                continue
            self.remove(name, version)
            total -= size
            log.info("cache evicted a version", model=name, version=version, bytes=size)
        if total > self.max_bytes:
            log.warning(
                "the cache holds more than --cache-max-bytes in versions that serve",
                cache_bytes=total,
                max_bytes=self.max_bytes,
            )

    def save_record(self, name: str, version: int) -> None:
        path = self.root / "serving" / name
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{uuid.uuid4().hex}")
            tmp.write_text(str(version))
            os.replace(tmp, path)

    def load_record(self, name: str) -> int | None:
        try:
            return int((self.root / "serving" / name).read_text())
        except (OSError, ValueError):
            return None

    def models(self) -> list[str]:
        folder = self.root / "serving"
        return sorted(p.name for p in folder.iterdir() if _NAME.match(p.name)) if folder.is_dir() else []

    def versions(self, name: str) -> list[int]:
        folder = self.root / "versions" / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / MANIFEST).is_file())
