"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(
    *args: str | Path, check: bool = True, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tuneserve`` command in a real process (``env``: added to this one's; ``input``:
    its stdin)."""
    cmd = [sys.executable, "-m", "tuneserve.cli", "--log-format", "json", *map(str, args)]
    environment = {**os.environ, **(env or {})}
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=environment, input=input or ""
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def ed25519_key_files(folder: Path, name: str = "k") -> tuple[Ed25519PrivateKey, Path, Path]:
    """A new Ed25519 key, written as ``<name>.pem`` (private, PKCS#8) and ``<name>.pub.pem`` (public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, private, public


def free_port() -> int:
    """A TCP port free on loopback now, for a server flag whose 0 means off (``--http-port``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
