"""Live-server fixtures: real `tuneserve serve` processes on loopback ports, over the tiny exported models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import free_port

from .live import ServerProcess

# Settings of the shared test server: a queue small enough for the flood test to overflow it.
SERVER_ARGS = ("--max-queue", "256", "--max-texts-per-request", "64", "--intra-op-threads", "1")


@pytest.fixture(scope="session")
def server(model_store: Path) -> Iterator[ServerProcess]:
    """The shared live server (with ``-X importtime``, so the no-torch test can read every import), with the
    Open Inference Protocol's HTTP port on."""
    proc = ServerProcess(model_store, *SERVER_ARGS, "--http-port", str(free_port()), importtime=True)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sentiment_version(model_store: Path) -> Path:
    from tuneserve.localstore import LocalModelStore

    return LocalModelStore(model_store).open_version("tiny-sentiment").path
