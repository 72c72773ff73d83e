"""Single objects in S3-compatible storage: the client every S3 path of tuneserve uses, and the download of
one data file named ``s3://BUCKET/KEY`` (training data). Model stores are ``tuneserve.s3store``.

The client follows the standard AWS chain: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, profiles (``AWS_PROFILE``), web identity on Kubernetes (``AWS_ROLE_ARN`` with
``AWS_WEB_IDENTITY_TOKEN_FILE``), instance roles. boto3 is imported only when an S3 path is used.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TRANSFER_THREADS = 8
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")


class ObjectError(Exception):
    """An object that cannot be read: absent, refused, or a store that cannot be reached."""


def s3_client() -> Any:
    """An S3 client from the standard AWS chain. botocore itself reads ``AWS_DEFAULT_REGION`` only;
    ``AWS_REGION`` (what other SDKs and EKS set) is honoured here too."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=2 * TRANSFER_THREADS,
    )
    return session.client("s3", config=config)


def is_s3(uri: str | Path) -> bool:
    return isinstance(uri, str) and uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://BUCKET/KEY``; the key normalized, never climbing out with ``..``."""
    match = _S3_URI.match(uri)
    if not match:
        raise ObjectError(f"{uri!r} is not s3://BUCKET/KEY")
    key = posixpath.normpath(match.group(2) or ".").lstrip("/")
    if key == "." or key.startswith(".."):
        raise ObjectError(f"{uri!r} names no object inside its bucket")
    return match.group(1), key


def inside(uri: str, root: str) -> bool:
    """Whether ``uri`` (s3://BUCKET/KEY) lies under the prefix ``root`` (s3://BUCKET[/PREFIX])."""
    bucket, key = split_s3(uri)
    match = _S3_URI.match(root)
    if not match or match.group(1) != bucket:
        return False
    prefix = (match.group(2) or "").strip("/")
    return not prefix or key.startswith(prefix + "/")


@contextlib.contextmanager
def fetched(uri: str) -> Iterator[Path]:
    """The object at ``s3://BUCKET/KEY`` downloaded into a temporary file, removed after the block."""
    with tempfile.TemporaryDirectory(prefix="tuneserve-data-") as tmp:
        yield download(uri, Path(tmp))


def download(uri: str, folder: Path) -> Path:
    """Download ``s3://BUCKET/KEY`` into ``folder`` under the key's file name (so its format is known by
    its extension); return the file."""
    from botocore import exceptions as bx

    bucket, key = split_s3(uri)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / posixpath.basename(key)
    try:
        s3_client().download_file(bucket, key, str(path))
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise ObjectError(f"{uri}: no such object") from None
        raise ObjectError(f"{uri} cannot be read: {code} {exc}") from exc
    except bx.NoCredentialsError as exc:
        why = "no AWS credentials (AWS_ACCESS_KEY_ID, a profile, web identity)"
        raise ObjectError(f"{uri}: {why}") from exc
    except bx.BotoCoreError as exc:
        raise ObjectError(f"{uri} cannot be read: {exc}") from exc
    return path
