"""TLS and mutual TLS on the gRPC port, from PEM files named in ``TLSSettings``.

With a certificate and its key the port speaks TLS only; with a client CA as well, every client must
present a certificate that CA signed (mutual TLS), and the handshake fails for one that does not. The files
are read and checked at start-up (Python's ``ssl`` parses them), so a bad file is a ``ConfigError`` naming
it rather than gRPC's "failed to bind".

Rotation needs no restart (cert-manager renews certificates in place): gRPC asks ``Reloader`` for the
certificates at every new TLS handshake; it compares the files' stat (inode, size, mtime) with what it last
loaded and, when they changed, reads and checks them again. Connections made after the change get the new
certificate (and client CA); open ones keep theirs. Files that changed but cannot be used (a key that is
not the certificate's, a half-written file) are logged and the previous certificate stays.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import grpc
import structlog

from tuneserve.server.settings import ConfigError, TLSSettings

log = structlog.get_logger("tuneserve.server.tls")


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


class Reloader:
    """The certificate configuration fetcher of ``grpc.dynamic_ssl_server_credentials``."""

    def __init__(self, settings: TLSSettings) -> None:
        assert settings.cert_file is not None and settings.key_file is not None
        self.settings = settings
        self.files = [settings.cert_file, settings.key_file]
        if settings.client_ca_file is not None:
            self.files.append(settings.client_ca_file)
        self._stamp = self._stat()
        self.initial = self._load()

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self.files:
            try:
                st = os.stat(path)
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        settings = self.settings
        assert settings.cert_file is not None and settings.key_file is not None
        chain = _read(settings.cert_file, "--tls-cert")
        key = _read(settings.key_file, "--tls-key")
        client_ca = (
            None if settings.client_ca_file is None else _read(settings.client_ca_file, "--tls-client-ca")
        )
        _check(settings)
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration if the files changed and are usable; None keeps the current one."""
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp  # a bad change is reported once, and tried again when the files change again
        try:
            config = self._load()
        except Exception as exc:
            log.warning(
                "tls files changed but cannot be used; the previous certificate stays", error=str(exc)
            )
            return None
        log.info("tls certificate reloaded", cert_file=str(self.settings.cert_file))
        return config


def server_credentials(settings: TLSSettings) -> grpc.ServerCredentials | None:
    """The credentials for ``add_secure_port``; None when TLS is off (plaintext port). The certificates
    are reloaded when their files change (``Reloader``)."""
    if settings.cert_file is None or settings.key_file is None:
        return None
    reloader = Reloader(settings)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial, reloader, require_client_authentication=settings.client_ca_file is not None
    )


class ContextReloader:
    """An ``ssl.SSLContext`` for the HTTP port from the same files, reloaded as ``Reloader`` reloads gRPC's.

    ``context`` is given to the listener; its SNI callback, run at every handshake, compares the files'
    stat with what was last loaded and, when they changed and are usable, moves the connection to a
    context built from the new files (later handshakes then use it too).
    """

    def __init__(self, settings: TLSSettings) -> None:
        self.settings = settings
        self._stamps = Reloader(settings)  # checks the files now: a bad one stops start-up
        self._current = self._build()
        self.context = self._build()
        self.context.sni_callback = self._on_handshake

    def _build(self) -> ssl.SSLContext:
        settings = self.settings
        assert settings.cert_file is not None and settings.key_file is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings.cert_file, settings.key_file, password=_no_password)
        if settings.client_ca_file is not None:
            context.load_verify_locations(cafile=settings.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _on_handshake(self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        stamp = self._stamps._stat()
        if stamp != self._stamps._stamp:
            self._stamps._stamp = stamp
            try:
                self._current = self._build()
                log.info("tls certificate reloaded (http)", cert_file=str(self.settings.cert_file))
            except (ssl.SSLError, OSError, ConfigError) as exc:
                log.warning(
                    "tls files changed but cannot be used; the previous certificate stays (http)",
                    error=str(exc),
                )
        connection.context = self._current


def http_ssl_context(settings: TLSSettings) -> ssl.SSLContext | None:
    """The SSL context of the HTTP port (``ContextReloader``); None when TLS is off."""
    if settings.cert_file is None or settings.key_file is None:
        return None
    return ContextReloader(settings).context
