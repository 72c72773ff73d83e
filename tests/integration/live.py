"""A live ``tuneserve serve`` process for tests, and helpers to read its metrics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from tuneserve.v1 import inference_pb2_grpc, model_pb2_grpc, training_pb2_grpc


class ServerProcess:
    """``python -m tuneserve.server`` in a subprocess; stderr (JSON logs) collected in a thread."""

    def __init__(
        self,
        model_root: Path,
        *args: str,
        importtime: bool = False,
        wait: bool = True,
        env: dict[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """``credentials``: for a server started with ``--tls-cert`` (its ``channel`` then speaks TLS)."""
        cmd = [
            sys.executable,
            *(["-X", "importtime"] if importtime else []),
            "-m",
            "tuneserve.server",
            "--model-root",
            str(model_root),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--http-port",  # off unless a test asks for it (``free_port``): 8080 would clash between servers
            "0",
            *args,
        ]
        full_env = {**os.environ, "TUNESERVE_LOG_LEVEL": "info", **(env or {})}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env
        )
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        listening = self.wait_event("listening")
        self.port: int = listening["port"]
        self.metrics_port: int = listening["metrics_port"]
        self.http_port: int = listening["http_port"]
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.target = f"127.0.0.1:{self.port}"
        self.channel = (
            grpc.insecure_channel(self.target)
            if credentials is None
            else grpc.secure_channel(self.target, credentials)
        )
        self.inference = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.models = model_pb2_grpc.ModelServiceStub(self.channel)
        self.training = training_pb2_grpc.TrainingServiceStub(self.channel)
        if wait:
            self.wait_event("serving")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("event") == name:
                        return event
                if self.proc.poll() is not None and not any(e.get("event") == name for e in self.events):
                    time.sleep(0.1)  # let the reader catch the last lines
                    raise AssertionError(
                        f"server exited ({self.proc.returncode}) before {name!r}:\n"
                        + "".join(self.lines[-40:])
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {name!r} event within {timeout} s:\n" + "".join(self.lines[-40:])
                    )
                self._cond.wait(min(left, 0.5))

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and return the exit status (killing the process if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    "server did not exit after the signal:\n" + "".join(self.lines[-40:])
                ) from None
        self.channel.close()
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


def start_failure(model_root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the server with ``args``, which must stop it at start-up (status 1, before listening); its stderr.

    The test's own ``TUNESERVE_*`` variables are not passed on, ``env`` is.
    """
    cmd = [sys.executable, "-m", "tuneserve.server", "--model-root", str(model_root)]
    cmd += ["--host", "127.0.0.1", "--port", "0", "--metrics-host", "127.0.0.1", "--metrics-port", "0"]
    cmd += ["--http-port", "0", *args]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TUNESERVE_")}
    full_env = {**inherited, **(env or {})}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full_env)
    assert result.returncode == 1, result.stderr
    assert '"listening"' not in result.stderr
    return result.stderr


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()) and head.split("{")[0] == name:
            return float(value)
    return 0.0
