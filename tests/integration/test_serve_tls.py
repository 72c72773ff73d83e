"""TLS and mutual TLS on a live server, with a throwaway CA and certificates made by ``trustme``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers import last_json, run_cli

from .live import ServerProcess, start_failure

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class PKI:
    """PEM files of a CA and a server certificate for 127.0.0.1/localhost, plus client credentials."""

    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def client(self, ca: trustme.CA | None = None) -> grpc.ChannelCredentials:
        """Trusts this CA and presents a client certificate signed by ``ca`` (this CA by default)."""
        cert = (ca or self.ca).issue_cert("client.tuneserve.test")
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=cert.private_key_pem.bytes(),
            certificate_chain=b"".join(blob.bytes() for blob in cert.cert_chain_pems),
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    server.private_key_pem.write_to_path(folder / "server.key")
    for blob in server.cert_chain_pems:
        blob.write_to_path(folder / "server.pem", append=True)
    return PKI(ca, folder / "ca.pem", folder / "server.pem", folder / "server.key")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-models")


def health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def refused(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The status of a health check over a new channel that the server should refuse."""
    channel = (
        grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
    )
    with channel, pytest.raises(grpc.RpcError) as info:
        health(channel)
    return info.value.code()


@pytest.fixture(scope="module")
def tls_server(empty_store: Path, pki: PKI) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        empty_store,
        "--tls-cert",
        str(pki.cert_file),
        "--tls-key",
        str(pki.key_file),
        credentials=grpc.ssl_channel_credentials(pki.ca_pem),
    )
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def mtls_server(empty_store: Path, pki: PKI) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        empty_store,
        credentials=pki.client(),
        env={
            "TUNESERVE_TLS__CERT_FILE": str(pki.cert_file),
            "TUNESERVE_TLS__KEY_FILE": str(pki.key_file),
            "TUNESERVE_TLS__CLIENT_CA_FILE": str(pki.ca_file),
        },
    )
    yield proc
    assert proc.stop() == 0


def test_tls_channel_trusting_the_ca_works(tls_server: ServerProcess, pki: PKI) -> None:
    assert tls_server.wait_event("listening")["tls"] == "tls"
    assert health(tls_server.channel) == SERVING
    # The certificate names localhost too (the channel checks the name it dialled).
    with grpc.secure_channel(f"localhost:{tls_server.port}", grpc.ssl_channel_credentials(pki.ca_pem)) as ch:
        assert health(ch) == SERVING


def test_tls_refuses_plaintext_and_untrusted_clients(tls_server: ServerProcess) -> None:
    assert refused(tls_server.target, None) == grpc.StatusCode.UNAVAILABLE
    other = grpc.ssl_channel_credentials(trustme.CA().cert_pem.bytes())
    assert refused(tls_server.target, other) == grpc.StatusCode.UNAVAILABLE
    plaintext = run_cli("models", "list", "--server", tls_server.target, check=False)
    assert plaintext.returncode == 1 and "the server speaks TLS? pass --ca-cert" in plaintext.stderr


def test_mtls_needs_a_client_certificate_signed_by_the_ca(mtls_server: ServerProcess, pki: PKI) -> None:
    assert mtls_server.wait_event("listening")["tls"] == "mtls"
    assert health(mtls_server.channel) == SERVING
    assert (
        refused(mtls_server.target, grpc.ssl_channel_credentials(pki.ca_pem)) == grpc.StatusCode.UNAVAILABLE
    )
    assert refused(mtls_server.target, pki.client(ca=trustme.CA())) == grpc.StatusCode.UNAVAILABLE
    assert refused(mtls_server.target, None) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_server_says_so(empty_store: Path) -> None:
    proc = ServerProcess(empty_store)
    try:
        listening = proc.wait_event("listening")
        assert (listening["tls"], listening["auth"]) == ("off", "off")
        assert health(proc.channel) == SERVING
    finally:
        assert proc.stop() == 0


def test_bad_tls_settings_stop_start_up_with_a_clear_message(
    empty_store: Path, pki: PKI, tmp_path: Path
) -> None:
    err = start_failure(empty_store, "--tls-cert", str(pki.cert_file))
    assert "give --tls-cert and --tls-key together" in err
    err = start_failure(empty_store, "--tls-client-ca", str(pki.ca_file))
    assert "--tls-client-ca (mutual TLS) needs TLS" in err
    missing = tmp_path / "missing.pem"
    err = start_failure(empty_store, "--tls-cert", str(missing), "--tls-key", str(pki.key_file))
    assert f"--tls-cert: {missing} does not exist" in err
    other_key = tmp_path / "other.key"
    pki.ca.issue_cert("elsewhere.test").private_key_pem.write_to_path(other_key)
    err = start_failure(empty_store, "--tls-cert", str(pki.cert_file), "--tls-key", str(other_key))
    assert "cannot serve TLS" in err and "KEY_VALUES_MISMATCH" in err


def test_python_client_with_tls_and_a_token(empty_store: Path, pki: PKI) -> None:
    """The packaged client's ``root_certificates`` and ``token`` against TLS plus ``--auth-inference``."""
    from tuneserve.client import TuneserveClient, TuneserveError

    token = "client-test-token"
    proc = ServerProcess(
        empty_store,
        "--tls-cert",
        str(pki.cert_file),
        "--tls-key",
        str(pki.key_file),
        "--auth-inference",
        credentials=grpc.ssl_channel_credentials(pki.ca_pem),
        env={"TUNESERVE_AUTH__READ_TOKENS": token},
    )
    try:
        with TuneserveClient(proc.target, root_certificates=pki.ca_pem, token=token) as client:
            assert client.list_models() == []
            assert client.health() == "SERVING"
        with TuneserveClient(proc.target, root_certificates=pki.ca_pem) as client:
            with pytest.raises(TuneserveError) as info:
                client.list_models()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        assert proc.stop() == 0


def test_ops_cli_with_mtls_and_tokens(
    empty_store: Path, pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ops commands' --ca-cert, --client-cert/--client-key and TUNESERVE_TOKEN against this server."""
    admin, read = "ops-admin-token", "ops-read-token"
    client = pki.ca.issue_cert("ops.tuneserve.test")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    proc = ServerProcess(
        empty_store,
        "--tls-cert",
        str(pki.cert_file),
        "--tls-key",
        str(pki.key_file),
        "--tls-client-ca",
        str(pki.ca_file),
        "--auth-inference",
        credentials=pki.client(),
        env={"TUNESERVE_AUTH__ADMIN_TOKENS": admin, "TUNESERVE_AUTH__READ_TOKENS": read},
    )
    at = ("--server", proc.target, "--ca-cert", pki.ca_file)
    at += ("--client-cert", tmp_path / "client.pem", "--client-key", tmp_path / "client.key")
    try:
        monkeypatch.setenv("TUNESERVE_TOKEN", read)
        assert last_json(run_cli("models", "list", *at).stdout) == {"models": []}
        refused = run_cli("models", "promote", "m", "1", *at, check=False)
        assert refused.returncode != 0 and "PERMISSION_DENIED" in refused.stderr
        monkeypatch.setenv("TUNESERVE_TOKEN", admin)
        allowed = run_cli("models", "promote", "m", "1", *at, check=False)
        # Past the check: what SetServingVersion says about a model that does not exist.
        assert "UNAUTHENTICATED" not in allowed.stderr and "PERMISSION_DENIED" not in allowed.stderr
        assert allowed.returncode != 0 and "NOT_FOUND" in allowed.stderr
        monkeypatch.delenv("TUNESERVE_TOKEN")
        anonymous = run_cli("models", "list", *at, check=False)
        assert anonymous.returncode != 0 and "UNAUTHENTICATED" in anonymous.stderr
    finally:
        assert proc.stop() == 0
    for line in proc.lines:
        assert admin not in line and read not in line
