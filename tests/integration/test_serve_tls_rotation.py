"""Certificates rotated on disk (as cert-manager does) are served to new connections without a restart; a
rotation that leaves unusable files keeps the previous certificate."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .live import ServerProcess

SERVING = health_pb2.HealthCheckResponse.SERVING


def _issue(ca: trustme.CA, folder: Path) -> None:
    """Write a server certificate of ``ca`` into ``folder``, replacing the files atomically."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(folder / "new.key")
    (folder / "new.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    os.replace(folder / "new.key", folder / "server.key")
    os.replace(folder / "new.pem", folder / "server.pem")


def _health(target: str, ca: trustme.CA) -> grpc.StatusCode:
    """A health check over a new connection that trusts only ``ca``."""
    credentials = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
    # A local subchannel pool: a new connection (and handshake), never one shared with an earlier channel.
    with grpc.secure_channel(target, credentials, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    assert status.status == SERVING
    return grpc.StatusCode.OK


def test_rotated_certificate_is_served_without_restart(tmp_path: Path) -> None:
    store = tmp_path / "models"
    store.mkdir()
    pki = tmp_path / "pki"
    pki.mkdir()
    old, new = trustme.CA(), trustme.CA()
    _issue(old, pki)
    server = ServerProcess(
        store,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        credentials=grpc.ssl_channel_credentials(old.cert_pem.bytes()),
    )
    try:
        assert _health(server.target, old) == grpc.StatusCode.OK
        assert _health(server.target, new) == grpc.StatusCode.UNAVAILABLE

        _issue(new, pki)
        assert _health(server.target, new) == grpc.StatusCode.OK
        assert _health(server.target, old) == grpc.StatusCode.UNAVAILABLE
        server.wait_event("tls certificate reloaded")

        # A broken rotation (a key that is not the certificate's) keeps the certificate that works.
        (pki / "server.key").write_bytes(trustme.CA().issue_cert("x.test").private_key_pem.bytes())
        assert _health(server.target, new) == grpc.StatusCode.OK
        server.wait_event("tls files changed but cannot be used; the previous certificate stays")
    finally:
        server.stop()
    assert server.proc.returncode == 0
