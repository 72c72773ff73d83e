"""A real Kubernetes API server for the tests: etcd and kube-apiserver on loopback ports, in subprocesses.

The envtest way: no kubelet, scheduler, controller-manager or garbage collector run (``tests/kubelet.py``
plays the node and the Job controller). kube-apiserver is ``$KUBE_APISERVER`` (``make kube-apiserver``
builds and caches v1.37.2 from the Go module proxy, see tests/kubeapiserver/go.mod); etcd is ``$ETCD``, else
``etcd`` on PATH (Debian's etcd-server). Authentication is a static token file, authorization RBAC: each
user named at ``start()`` gets a token, so a test can run code with exactly the rights a manifest's Role
grants (a user named ``system:serviceaccount:NS:NAME`` is that ServiceAccount to RBAC).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from s3server import free_port

KUBE_VERSION = "v1.37.2"
ADMIN = "admin"
# The namespace the ``kube_api`` fixture creates, and the trainer's ServiceAccount (deploy/kubernetes).
NAMESPACE = "tuneserve"
TRAINER_SERVICE_ACCOUNT = "tuneserve-trainer"
SERVICE_CIDR = "10.96.0.0/16"


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneserve" / "bin"


def kube_apiserver_binary() -> Path | None:
    """kube-apiserver: $KUBE_APISERVER (`make test` builds and caches it), else the cached build."""
    if os.environ.get("KUBE_APISERVER"):
        return Path(os.environ["KUBE_APISERVER"])
    built = _cache() / f"kube-apiserver-{KUBE_VERSION}"
    return built if built.is_file() else None


def etcd_binary() -> Path | None:
    """etcd: $ETCD, else the one on PATH (Debian's etcd-server installs /usr/bin/etcd), else None."""
    if os.environ.get("ETCD"):
        return Path(os.environ["ETCD"])
    found = shutil.which("etcd")
    return Path(found) if found else None


def service_account_user(namespace: str, name: str) -> tuple[str, list[str]]:
    """The user name and groups the API server gives a ServiceAccount's token."""
    return (
        f"system:serviceaccount:{namespace}:{name}",
        ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    )


class KubeAPIServer:
    """etcd and kube-apiserver under ``root``; their output in ``root/etcd.log`` and ``root/apiserver.log``.

    ``users`` maps user names to groups; each gets a token (``token(user)``). The user ``admin`` (group
    ``system:masters``) is always there, for the test's own set-up and for ``tests/kubelet.py``.
    """

    def __init__(
        self,
        apiserver: Path,
        etcd: Path,
        root: Path,
        users: dict[str, list[str]] | None = None,
        *,
        start_timeout: float = 90.0,
    ) -> None:
        self.apiserver_binary, self.etcd_binary = Path(apiserver), Path(etcd)
        self.root = Path(root)
        self.start_timeout = start_timeout
        self.users = {ADMIN: ["system:masters"], **(users or {})}
        self.tokens = {user: secrets.token_hex(16) for user in self.users}
        self.port = free_port()
        self._procs: list[subprocess.Popen[bytes]] = []
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate, which is its own CA."""
        return self.root / "certs" / "apiserver.crt"

    def token(self, user: str = ADMIN) -> str:
        return self.tokens[user]

    def kubeconfig(self, user: str = ADMIN, path: Path | None = None) -> Path:
        """A kubeconfig file (for ``KUBECONFIG``) that reaches this server as ``user``."""
        import yaml

        path = path or self.root / f"kubeconfig-{user.replace(':', '-')}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def client(self, user: str = ADMIN) -> Any:
        """A ``kubernetes.client.ApiClient`` for this server as ``user``."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = str(self.ca_file)
        config.api_key = {"authorization": f"Bearer {self.token(user)}"}
        return client.ApiClient(config)

    def start(self) -> None:
        """Start etcd, then the API server; return once ``/readyz`` answers ok."""
        self.root.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port = free_port(), free_port()
        self._spawn(
            [
                str(self.etcd_binary),
                "--name=test",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
            ],
            "etcd.log",
        )
        key = self.root / "sa.key"
        _write_rsa_key(key)
        tokens = self.root / "tokens.csv"
        tokens.write_text(
            "".join(
                f'{self.tokens[user]},{user},{user},"{",".join(groups)}"\n'
                for user, groups in self.users.items()
            )
        )
        self._spawn(
            [
                str(self.apiserver_binary),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.root / 'certs'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",
                "--kubelet-preferred-address-types=InternalIP",
                "--enable-priority-and-fairness=false",
                "--v=1",
            ],
            "apiserver.log",
        )
        self._wait_ready()

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def _spawn(self, argv: list[str], log_name: str) -> None:
        with (self.root / log_name).open("ab") as out:
            self._procs.append(
                subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token()}"}
        )
        last = ""
        while time.monotonic() < deadline:
            for proc, name in zip(self._procs, ("etcd", "kube-apiserver"), strict=False):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): see {self.root}/*.log")
            if self.ca_file.is_file():
                context = ssl.create_default_context(cafile=str(self.ca_file))
                try:
                    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
                        if answer.read() == b"ok":
                            return
                except (OSError, urllib.error.URLError) as exc:
                    last = str(exc)
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"kube-apiserver was not ready in {self.start_timeout:.0f} s ({last})")


def _write_rsa_key(path: Path) -> None:
    """The key pair that signs (and verifies) ServiceAccount tokens; the API server requires one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
