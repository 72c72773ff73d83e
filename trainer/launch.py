"""Run ``train`` under torchrun (DDP): the launching side, used by ``tuneserve train --nproc-per-node`` and
by training jobs that ask for ``nproc_per_node``.

``launch`` starts ``python -m tuneserve.trainer.torchrun`` (``torch.distributed.run`` with its failures kept,
see ``torchrun.py``) in a session of its own, which starts one ``tuneserve.trainer.worker`` per rank. They
talk through a private run folder:

- ``config.json``: the ``TrainConfig``, written here;
- ``events.jsonl``: rank 0's progress events and its result (or ``cancelled``), followed here: the other
  ranks report nothing, so every event arrives once;
- ``cancel``: created here when ``should_cancel`` says so; rank 0 checks it each step and broadcasts its
  decision, so that all ranks stop at the same step;
- ``failures.json``: written by the torchrun wrapper when a rank failed: which rank, how, and its error
  (from torchrun's elastic error file).

A rank that fails ends the whole run (torchrun stops the others, no restarts); ``launch`` raises
``RankFailed`` naming the rank. Nothing outlives the launcher: it stops torchrun when it is interrupted,
torchrun stops its workers, and torchrun and each worker exit when their parent is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from tuneserve import logs
from tuneserve.progress import CancelFn, Cancelled, Progress, ProgressFn, never, no_progress

if TYPE_CHECKING:
    from tuneserve.trainer.train import TrainConfig, TrainResult

log = structlog.get_logger(__name__)

CANCELLED_EXIT = 3  # a worker that stopped on a cancel
STOP_GRACE_S = 40.0  # torchrun gives its workers 30 s after SIGTERM before it kills them
CONFIG, EVENTS, CANCEL, FAILURES = "config.json", "events.jsonl", "cancel", "failures.json"


class RankFailed(RuntimeError):
    """A rank of a distributed run failed; the message names the rank and its error."""


@dataclass(frozen=True)
class Launch:
    """Where the ranks of a run come from: ``nproc_per_node`` processes on each of ``nnodes`` hosts."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # HOST:PORT of node 0, for nnodes > 1
    threads_per_rank: int | None = None  # OMP_NUM_THREADS of each rank [default: cores / nproc_per_node]

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node > 1 or self.nnodes > 1

    def check(self) -> None:
        """ValueError for a launch that cannot work."""
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ValueError("--nproc-per-node and --nnodes must be at least 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"--node-rank {self.node_rank} must be in [0, {self.nnodes - 1}] (--nnodes)")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (node 0, reachable by every node)")
        if self.rdzv_endpoint and ":" not in self.rdzv_endpoint:
            raise ValueError(f"--rdzv-endpoint {self.rdzv_endpoint!r}: expected HOST:PORT")

    def torchrun_args(self, log_dir: Path) -> list[str]:
        """torchrun's options: one node on a free loopback port, or a static rendezvous at node 0."""
        args = ["--nproc-per-node", str(self.nproc_per_node), "--max-restarts", "0"]
        args += ["--log-dir", str(log_dir)]  # where each rank's elastic error file goes
        if self.nnodes == 1:
            return [*args, "--standalone"]
        return [
            *args,
            *("--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank)),
            *("--rdzv-backend", "static", "--rdzv-endpoint", str(self.rdzv_endpoint)),
        ]


def launch(
    config: TrainConfig,
    how: Launch,
    on_progress: ProgressFn = no_progress,
    should_cancel: CancelFn = never,
) -> TrainResult | None:
    """Train under torchrun; the result of rank 0 (None on a node without rank 0)."""
    how.check()
    with tempfile.TemporaryDirectory(prefix="tuneserve-ddp-") as folder:
        run = Path(folder)
        (run / CONFIG).write_text(json.dumps(_config_json(config)))
        level, fmt = logs.current()
        threads = how.threads_per_rank or max(1, (os.cpu_count() or 1) // how.nproc_per_node)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "TUNESERVE_LOG_LEVEL": level,
            "TUNESERVE_LOG_FORMAT": fmt,
            "TUNESERVE_TORCHRUN_FAILURES": str(run / FAILURES),
        }
        cmd = [
            sys.executable,
            "-m",
            "tuneserve.trainer.torchrun",
            *how.torchrun_args(run / "logs"),
            "-m",
            "tuneserve.trainer.worker",
            str(run),
        ]
        log.info(
            "launching",
            nproc_per_node=how.nproc_per_node,
            nnodes=how.nnodes,
            node_rank=how.node_rank,
            threads_per_rank=threads,
        )
        # Its own session: a terminal's Ctrl-C or a job's SIGTERM reaches this process, which stops the
        # run cooperatively (``cancel``) or through torchrun, never torchrun and the ranks all at once.
        # stdout: the ranks' stray prints go to stderr; our stdout carries the result alone.
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), start_new_session=True
        )
        try:
            return _follow(proc, run, on_progress, should_cancel)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Stop torchrun (and so its ranks) if it still runs: SIGTERM, then SIGKILL after ``STOP_GRACE_S``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _follow(
    proc: subprocess.Popen, run: Path, on_progress: ProgressFn, should_cancel: CancelFn
) -> TrainResult | None:
    events, offset = run / EVENTS, 0
    result: dict[str, Any] | None = None
    cancelled = asked = False
    while True:
        code = proc.poll()
        lines, offset = _read_lines(events, offset)
        for line in lines:
            event = json.loads(line)
            if event["type"] == "progress":
                on_progress(Progress(**event["progress"]))
            elif event["type"] == "result":
                result = event["result"]
            elif event["type"] == "cancelled":
                cancelled = True
        if code is not None:
            break
        if not asked and should_cancel():
            asked = True
            (run / CANCEL).touch()
            log.info("cancel requested: ranks stop at their next step")
        time.sleep(0.2)
    if code == 0:
        return _result(result) if result is not None else None
    if cancelled or asked:
        raise Cancelled("training was cancelled")
    raise RankFailed(_failure(run / FAILURES, code))


def _read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines appended to ``path`` since ``offset``."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].decode().splitlines() if line.strip()], offset + end


def _failure(path: Path, code: int) -> str:
    """What failed, from the failures the torchrun wrapper recorded: the first rank to fail first."""
    try:
        failures = json.loads(path.read_text())
    except (OSError, ValueError):
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return f"distributed training failed: torchrun {how} before any rank reported a failure"
    first, *others = failures
    text = f"distributed training failed: {describe(first)}"
    if others:
        text += "; then " + "; ".join(describe(f) for f in others)
    return text


def describe(failure: dict[str, Any]) -> str:
    """One rank's failure in words: ``rank 1 (local rank 1, pid 123) was killed by SIGKILL``."""
    who = f"rank {failure['rank']} (local rank {failure['local_rank']}, pid {failure['pid']})"
    if failure["exitcode"] < 0:
        return f"{who} was killed by {failure['signal']}"
    if failure["exitcode"] == CANCELLED_EXIT:
        return f"{who} stopped: cancelled"
    message = failure.get("error") or "no error recorded (see the log)"
    return f"{who} exited with status {failure['exitcode']}: {message}"


def _config_json(config: TrainConfig) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}


def config_from_json(data: dict[str, Any]) -> TrainConfig:
    from tuneserve.trainer.train import TrainConfig

    for key in ("train", "validation", "output"):
        data[key] = Path(data[key])
    return TrainConfig(**data)


def result_json(result: TrainResult) -> dict[str, Any]:
    return {**asdict(result), "output": str(result.output)}


def _result(data: dict[str, Any]) -> TrainResult:
    from tuneserve.trainer.train import TrainResult

    return TrainResult(**{**data, "output": Path(data["output"])})


def exit_with_parent(on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` (in a daemon thread) when this process's parent exits, so that nothing of a run
    outlives the process that started it, even one killed with SIGKILL."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        on_gone()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
