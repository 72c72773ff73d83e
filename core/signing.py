"""Ed25519 signatures over a version's manifest digest (optional; the ``cryptography`` package).

The exporter signs with a private key (``tuneserve export --signing-key``); a server given the public key
(``tuneserve serve --verify-key``) loads only versions whose ``manifest.sig`` verifies. The manifest holds
the sha256 of every other file, so the signature covers the whole version folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# What is signed: this prefix and the manifest's sha256 hex digest, so a signature made for anything else
# with the same key never passes as a manifest signature.
_CONTEXT = b"tuneserve manifest sha256 "


class SigningError(Exception):
    """A key file that is not an Ed25519 key in PEM, or cannot be read."""


def _pem(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key (PEM, PKCS#8), e.g. ``openssl genpkey -algorithm ed25519``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_pem(path), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key (PEM, SubjectPublicKeyInfo), e.g. ``openssl pkey -pubout``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_pem(path))
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def sign_digest(key: Ed25519PrivateKey, digest: str) -> bytes:
    """The signature (64 bytes) of a manifest's sha256 hex digest."""
    return key.sign(_CONTEXT + digest.encode())


def signature_matches(key: Ed25519PublicKey, digest: str, signature: bytes) -> bool:
    """Whether ``signature`` was made over ``digest`` with the private half of ``key``."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, _CONTEXT + digest.encode())
    except InvalidSignature:
        return False
    return True
