"""A real S3-compatible server for the tests: MinIO on loopback ports, in a subprocess.

The binary is ``$MINIO`` (``make test`` builds and caches it, see the Makefile's ``MINIO_VERSION``). The
``minio`` and ``s3_store`` fixtures in conftest.py are the usual way in; ``MinioServer`` is also for tests
that need a server of their own (stopped, killed and restarted on the same port and data, e.g. under load).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

ACCESS_KEY = "tuneserve-test"
SECRET_KEY = "tuneserve-test-secret"
REGION = "us-east-1"
# Variables of the test process that would change what an S3 client does (a stale session token is sent
# along with our keys and refused; a missing profile fails the client): the s3_store fixture unsets them.
CLEARED_AWS_VARS = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CA_BUNDLE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def minio_binary() -> Path | None:
    """MinIO: $MINIO (`make test` builds and caches it), else a cached build, else None."""
    if os.environ.get("MINIO"):
        return Path(os.environ["MINIO"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneserve" / "bin"
    built = sorted(p for p in cache.glob("minio-*") if p.is_file())
    return built[-1] if built else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MinioServer:
    """``minio server`` on 127.0.0.1, its data in ``root/data``, its output in ``root/minio.log``.

    The ports are chosen at the first ``start()`` and kept: a restarted server has the same endpoint and
    data, so clients and ``s3://`` URIs made before a ``stop()`` work again after ``start()``.
    """

    def __init__(self, binary: str | Path, root: Path, *, start_timeout: float = 60.0) -> None:
        self.binary = Path(binary)
        self.root = Path(root)
        self.data = self.root / "data"
        self.log_path = self.root / "minio.log"
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.console_port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        # A run that ends without stopping it (an exception outside the fixtures) must not leave it behind.
        atexit.register(self.kill)

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("MinIO has not been started yet: its port is chosen by start()")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        """What an S3 client (boto3, the AWS CLI and the other SDKs) needs to find and sign for this server.
        Both region variables: boto3 reads ``AWS_DEFAULT_REGION``, the newer SDKs ``AWS_REGION``."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, config: Config | None = None) -> Any:
        """A boto3 S3 client for this server (``config``, e.g. ``Config(retries={"total_max_attempts": 1})``:
        a botocore Config)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=config,
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def start(self) -> None:
        """Start the server (the first time on free ports, then on the same ones); return once it is live."""
        if self.running:
            raise RuntimeError(f"MinIO is already running at {self.endpoint}")
        if not self.binary.is_file():
            raise FileNotFoundError(f"no MinIO binary at {self.binary} (`make minio` builds it)")
        self.data.mkdir(parents=True, exist_ok=True)
        if self.port is not None:
            self._start_once()
            return
        # Free now is not free at the server's bind: on a clash, try other ports.
        for attempt in range(3):
            self.port, self.console_port = free_port(), free_port()
            try:
                self._start_once()
                return
            except RuntimeError:
                if attempt == 2 or "address already in use" not in self.log_tail().lower():
                    self.port = self.console_port = None
                    raise

    def _start_once(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),  # it makes $HOME/.minio even with --certs-dir
            "MINIO_ROOT_USER": ACCESS_KEY,
            "MINIO_ROOT_PASSWORD": SECRET_KEY,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        cmd = [
            str(self.binary),
            "server",
            str(self.data),
            "--address",
            f"127.0.0.1:{self.port}",
            "--console-address",
            f"127.0.0.1:{self.console_port}",
            "--certs-dir",
            str(self.root / "certs"),
            "--quiet",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root
            )
        self._wait_live()

    def _wait_live(self) -> None:
        assert self.proc is not None
        url = f"{self.endpoint}/minio/health/live"
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise RuntimeError(
                    f"MinIO exited ({code}) while starting; {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"MinIO did not answer {url} within {self.start_timeout:.0f} s; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (MinIO shuts down gracefully), then SIGKILL after ``timeout``. No-op when not running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, with no graceful shutdown."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> MinioServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class S3Store:
    """What the ``s3_store`` fixture gives: a fresh bucket on the session's MinIO."""

    uri: str  # s3://<bucket>/models: a model store root
    bucket: str
    env: dict[str, str]  # MinioServer.env(): for a subprocess's environment
    client: Any  # a boto3 S3 client for the server
    server: MinioServer  # stop()/kill() and start() it again; the fixture restarts it if a test does not
