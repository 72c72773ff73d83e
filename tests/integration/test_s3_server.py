"""What the s3:// model store relies on, checked against the real MinIO of the tests (boto3, no mocks).

Conditional writes: create-if-absent (``If-None-Match: *``) and compare-and-swap (``If-Match: <etag>``) on
PutObject, both failing with 412 PreconditionFailed and leaving the object as it was; a conditional read
(304); a stopped server's connection error and a restarted server's same data; the fixture's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from s3server import S3Store


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    """The S3 error code and the HTTP status of a ClientError."""
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def body(s3: S3Store, key: str) -> bytes:
    return s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def test_create_if_absent_fails_on_an_existing_key_and_keeps_it(s3_store: S3Store) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    created = client.put_object(Bucket=bucket, Key="models/a", Body=b"first", IfNoneMatch="*")

    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="models/a", Body=b"second", IfNoneMatch="*")
    assert error(exc) == ("PreconditionFailed", 412)
    assert body(s3_store, "models/a") == b"first"
    assert client.head_object(Bucket=bucket, Key="models/a")["ETag"] == created["ETag"]


def test_create_if_absent_has_one_winner_among_concurrent_writers(s3_store: S3Store) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def put(i: int) -> None:
        try:
            s3_store.client.put_object(Bucket=s3_store.bucket, Key="race", Body=b"%d" % i, IfNoneMatch="*")
            outcome = f"won:{i}"
        except ClientError as e:
            outcome = e.response["Error"]["Code"]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("won:")]
    assert len(winners) == 1 and results.count("PreconditionFailed") == 7, results
    assert body(s3_store, "race") == winners[0].removeprefix("won:").encode()


def test_compare_and_swap_succeeds_with_the_current_etag_only(s3_store: S3Store) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    stale = client.put_object(Bucket=bucket, Key="pointer", Body=b"v1")["ETag"]
    current = client.put_object(Bucket=bucket, Key="pointer", Body=b"v2", IfMatch=stale)["ETag"]
    assert current != stale and body(s3_store, "pointer") == b"v2"

    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="pointer", Body=b"v3", IfMatch=stale)
    assert error(exc) == ("PreconditionFailed", 412)
    assert body(s3_store, "pointer") == b"v2"

    # On a missing key If-Match is a 404 (as on AWS), not a 412.
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=current)
    assert error(exc) == ("NoSuchKey", 404)


def test_conditional_multipart_completion_fails_on_an_existing_key(s3_store: S3Store) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    client.put_object(Bucket=bucket, Key="big", Body=b"kept")
    upload = client.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    part = client.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"new")
    with pytest.raises(ClientError) as exc:
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="big",
            UploadId=upload,
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
            IfNoneMatch="*",
        )
    assert error(exc) == ("PreconditionFailed", 412)
    assert body(s3_store, "big") == b"kept"
    client.abort_multipart_upload(Bucket=bucket, Key="big", UploadId=upload)


def test_conditional_delete_is_ignored_by_minio(s3_store: S3Store) -> None:
    """MinIO deletes despite a stale If-Match (AWS refuses with 412): the store must not rely on it."""
    client, bucket = s3_store.client, s3_store.bucket
    client.put_object(Bucket=bucket, Key="doomed", Body=b"x")
    client.delete_object(Bucket=bucket, Key="doomed", IfMatch='"00000000000000000000000000000000"')
    with pytest.raises(ClientError) as exc:
        client.head_object(Bucket=bucket, Key="doomed")
    assert error(exc) == ("404", 404)


def test_a_read_with_the_current_etag_is_not_modified(s3_store: S3Store) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    etag = client.put_object(Bucket=bucket, Key="manifest.json", Body=b"{}")["ETag"]
    # botocore raises a plain ClientError whose code is the status itself.
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=bucket, Key="manifest.json", IfNoneMatch=etag)
    assert error(exc) == ("304", 304)
    assert client.get_object(Bucket=bucket, Key="manifest.json", IfNoneMatch='"other"')["ETag"] == etag


def test_a_stopped_server_refuses_and_a_restarted_one_serves_the_same_objects(s3_store: S3Store) -> None:
    server, bucket = s3_store.server, s3_store.bucket
    s3_store.client.put_object(Bucket=bucket, Key="models/kept", Body=b"payload")
    endpoint = server.endpoint
    once = server.client(Config(retries={"total_max_attempts": 1}, connect_timeout=2))

    server.stop()
    with pytest.raises(EndpointConnectionError):
        once.get_object(Bucket=bucket, Key="models/kept")
    # The client made before the stop, with its default retries, sees the same class.
    with pytest.raises(EndpointConnectionError):
        s3_store.client.get_object(Bucket=bucket, Key="models/kept")

    server.start()
    assert server.endpoint == endpoint
    assert body(s3_store, "models/kept") == b"payload"


def test_the_environment_reaches_in_process_and_subprocess_clients(s3_store: S3Store) -> None:
    """boto3 with no arguments, here and in a child that inherits os.environ (as tests/integration/live.py's
    servers do), finds the server, the keys and the region from the fixture's variables."""
    import boto3

    s3_store.client.put_object(Bucket=s3_store.bucket, Key="models/x", Body=b"hello")
    assert boto3.client("s3").get_object(Bucket=s3_store.bucket, Key="models/x")["Body"].read() == b"hello"
    assert os.environ["AWS_ENDPOINT_URL"] == s3_store.env["AWS_ENDPOINT_URL"]
    assert s3_store.uri == f"s3://{s3_store.bucket}/models"

    code = (
        "import boto3, sys\n"
        "got = boto3.client('s3').get_object(Bucket=sys.argv[1], Key='models/x')\n"
        "sys.stdout.write(got['Body'].read().decode())\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, s3_store.bucket], capture_output=True, text=True, timeout=60, check=False
    )
    assert (child.returncode, child.stdout) == (0, "hello"), child.stderr
