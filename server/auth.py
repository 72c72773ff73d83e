"""Bearer-token authentication: which token may call which RPC.

Two kinds of token, read once at start-up from files (one token a line; blank lines and ``#`` comments
ignored) and/or the environment (``TUNESERVE_AUTH__ADMIN_TOKENS``, ``TUNESERVE_AUTH__READ_TOKENS``,
comma-separated). With no token configured nothing is checked, and the interceptor never calls in here.
With tokens configured::

    RPC                                                     needs
    TrainingService (every method)                          admin token
    ModelService SetServingVersion, DeleteModelVersion      admin token
    any other tuneserve RPC not listed below                admin token (new RPCs are privileged until listed)
    InferenceService, ModelService ListModels and GetModel  nothing, or a read or admin token when
    inference.GRPCInferenceService (Open Inference Protocol) ``require_token_for_inference`` is set
    health, reflection                                      never checked (the interceptor passes them by)

Clients send ``authorization: Bearer <token>`` metadata (the scheme is case-insensitive). No token, a
malformed header or an unknown token: UNAUTHENTICATED; a read token where an admin token is needed:
PERMISSION_DENIED. Presented tokens are hashed and compared with every configured token's hash by
``hmac.compare_digest``, without stopping at a match, so the time taken tells nothing about which matched.
Tokens are never logged and never quoted in a message.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from tuneserve.oip import open_inference_grpc_pb2
from tuneserve.server.errors import PermissionDenied, Unauthenticated
from tuneserve.server.settings import AuthSettings, ConfigError
from tuneserve.v1 import inference_pb2, model_pb2

Metadata = Sequence[tuple[str, str | bytes]]
_HOW = "send 'authorization: Bearer <token>' metadata"


class Role(enum.IntEnum):
    """What a token allows; an RPC needs at least its role."""

    READ = 1
    ADMIN = 2


def _methods(descriptor: Any, service: str, names: Collection[str] | None = None) -> list[str]:
    """Full method paths (``/package.Service/Method``) of ``service``: all of them, or ``names``."""
    desc = descriptor.services_by_name[service]
    return [f"/{desc.full_name}/{m.name}" for m in desc.methods if names is None or m.name in names]


# The RPCs a read token may call; every other intercepted RPC needs an admin token.
READ_METHODS = frozenset(
    _methods(inference_pb2.DESCRIPTOR, "InferenceService")
    + _methods(open_inference_grpc_pb2.DESCRIPTOR, "GRPCInferenceService")
    + _methods(model_pb2.DESCRIPTOR, "ModelService", ("ListModels", "GetModel"))
)


def parse_tokens(lines: Iterable[str], source: str, unit: str = "line") -> list[str]:
    """The tokens in ``lines`` (surrounding spaces dropped; blank lines and ``#`` comments skipped).

    Raises ``ConfigError`` naming ``source`` and the ``unit`` number (never the token) for a token that
    cannot be sent as gRPC metadata: one with spaces inside or characters other than printable ASCII.
    """
    tokens = []
    for number, line in enumerate(lines, 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not all(33 <= ord(c) <= 126 for c in token):
            raise ConfigError(
                f"{source}, {unit} {number}: a token must be printable ASCII without spaces "
                "(it travels as gRPC metadata)"
            )
        tokens.append(token)
    return tokens


def read_token_file(path: Path, option: str) -> list[str]:
    """The tokens in the file at ``path``; a missing, unreadable or empty file is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{option}: token file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{option}: cannot read token file {path}: {reason}") from None
    tokens = parse_tokens(text.splitlines(), f"token file {path}")
    if not tokens:
        raise ConfigError(
            f"{option}: token file {path} holds no token: put one token per line "
            "(blank lines and # comments are ignored)"
        )
    return tokens


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


class Authenticator:
    """Checks the bearer token of a call against the RPC's needed role (see the module docstring)."""

    def __init__(
        self, admin_tokens: Iterable[str], read_tokens: Iterable[str], require_token_for_inference: bool
    ) -> None:
        admin = {_digest(t) for t in admin_tokens}
        # A token in both lists is an admin token.
        self._tokens = [(d, Role.ADMIN) for d in admin] + [
            (d, Role.READ) for d in {_digest(t) for t in read_tokens} - admin
        ]
        if not self._tokens:
            raise ConfigError("authentication needs at least one admin or read token")
        self._read_needs: Role | None = Role.READ if require_token_for_inference else None

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator | None:
        """The authenticator for ``settings``, its files read now; None when no token is configured.

        ``--auth-inference`` without tokens is refused here rather than by a settings validator, whose
        error would quote the whole section, tokens included.
        """
        if not settings.configured:
            if settings.require_token_for_inference:
                raise ConfigError(
                    "--auth-inference needs tokens: give --admin-tokens-file or --read-tokens-file, or "
                    "TUNESERVE_AUTH__ADMIN_TOKENS / TUNESERVE_AUTH__READ_TOKENS in the environment"
                )
            return None
        admin = parse_tokens(
            settings.admin_tokens.get_secret_value().split(","), "TUNESERVE_AUTH__ADMIN_TOKENS", "item"
        )
        read = parse_tokens(
            settings.read_tokens.get_secret_value().split(","), "TUNESERVE_AUTH__READ_TOKENS", "item"
        )
        if settings.admin_tokens_file is not None:
            admin += read_token_file(settings.admin_tokens_file, "--admin-tokens-file")
        if settings.read_tokens_file is not None:
            read += read_token_file(settings.read_tokens_file, "--read-tokens-file")
        return cls(admin, read, settings.require_token_for_inference)

    @property
    def mode(self) -> str:
        """For the start-up log: which RPCs need a token."""
        return "privileged" if self._read_needs is None else "all"

    def needs(self, method: str) -> Role | None:
        """The role ``method`` (``/package.Service/Method``) needs; None: open to all."""
        return self._read_needs if method in READ_METHODS else Role.ADMIN

    def check(self, method: str, metadata: Metadata | None) -> None:
        """Return if the call's metadata allows ``method``; else raise ``Unauthenticated`` or
        ``PermissionDenied`` with a message that says what to send."""
        needed = self.needs(method)
        if needed is None:
            return
        kind = "an admin token" if needed is Role.ADMIN else "a read or admin token"
        token = _bearer(metadata)
        if token is None:
            raise Unauthenticated(f"{_HOW}; this RPC needs {kind}")
        role = self.role_of(token)
        if role is None:
            raise Unauthenticated(f"unknown bearer token; {_HOW} with a token this server accepts ({kind})")
        if role < needed:
            raise PermissionDenied(
                "this RPC needs an admin token and the bearer token sent is a read-only one; "
                f"{_HOW} with an admin token"
            )

    def role_of(self, token: str | bytes) -> Role | None:
        """The role of ``token``: compared with every configured token, never stopping early."""
        presented = _digest(token)
        found = 0
        for digest, role in self._tokens:
            found = max(found, role * hmac.compare_digest(presented, digest))
        return Role(found) if found else None


def _bearer(metadata: Metadata | None) -> str | bytes | None:
    """The token of the first ``authorization`` entry if it is ``Bearer <token>`` (any case); else None."""
    for key, value in metadata or ():
        if key != "authorization":
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None
    return None
