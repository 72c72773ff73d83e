"""TLS and mutual TLS on the gRPC port, from PEM files named in ``TLSSettings``.

With a certificate and its key the port speaks TLS only; with a client CA as well, every client must
present a certificate that CA signed (mutual TLS), and the handshake fails for one that does not. The files
are read and checked once at start-up (Python's ``ssl`` parses them), so a bad file is a ``ConfigError``
naming it rather than gRPC's "failed to bind"; replacing a certificate takes a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from tuneserve.server.settings import ConfigError, TLSSettings


def _read(path: Path, option: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{option}: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        raise ConfigError(f"{option}: {path} is empty; it must hold PEM")
    return data


def _no_password() -> bytes:
    raise ConfigError("the TLS key is encrypted: give an unencrypted key (gRPC cannot prompt for a password)")


def _check(settings: TLSSettings) -> None:
    """Parse the files with ``ssl``: the certificate and key must be PEM and belong together."""
    assert settings.cert_file is not None and settings.key_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"--tls-cert {settings.cert_file} and --tls-key {settings.key_file} cannot serve TLS "
            f"({exc.reason or exc}): both must be PEM, the key unencrypted and the certificate's own"
        ) from None
    if settings.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"--tls-client-ca {settings.client_ca_file} holds no usable CA certificate "
                f"({exc.reason or exc}): it must be PEM"
            ) from None


def server_credentials(settings: TLSSettings) -> grpc.ServerCredentials | None:
    """The credentials for ``add_secure_port``; None when TLS is off (plaintext port)."""
    if settings.cert_file is None or settings.key_file is None:
        return None
    chain = _read(settings.cert_file, "--tls-cert")
    key = _read(settings.key_file, "--tls-key")
    client_ca = None if settings.client_ca_file is None else _read(settings.client_ca_file, "--tls-client-ca")
    _check(settings)
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
