"""DDP through torchrun: 2 gloo processes on the CPU, a tiny BERT, real processes.

Ranks agree where they stop, rank 0 alone reports and writes, a cancel stops every rank, and a killed rank
fails the run with its name and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import FIXTURES, run_cli
from tuneserve.progress import Cancelled, Progress
from tuneserve.trainer.launch import Launch, launch
from tuneserve.trainer.train import TrainConfig

# Imported by every Python process started with it on PYTHONPATH: in a rank other than 0, any write under
# $GUARD_OUTPUT (open for writing, mkdir, rename, remove) raises, and so fails the run.
GUARD = """
import os, sys
_out, _rank = os.environ.get("GUARD_OUTPUT"), os.environ.get("RANK", "0")
if _out and _rank != "0":
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"}
    def _guard(event, args):
        if event == "open":
            mode, flags = args[1], args[2]
            writes = isinstance(mode, str) and set(mode) & set("wax+")
            if not (writes or (isinstance(flags, int) and flags & _WRITE)):
                return
        elif event not in _EVENTS:
            return
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        if os.path.abspath(os.fsdecode(path)).startswith(_out):
            raise PermissionError(f"rank {_rank} wrote under the output folder: {event} {path}")
    sys.addaudithook(_guard)
"""


def _args(tiny_base: Path, out: Path, *extra: str) -> list[str | Path]:
    return [
        *("train", "--task", "classification", "--train", FIXTURES / "sentiment_train.tsv"),
        *("--validation", FIXTURES / "sentiment_validation.tsv", "--output", out, "--base", tiny_base),
        *("--batch-size", "4", "--max-length", "32", "--nproc-per-node", "2", *extra),
    ]


def test_ranks_agree_and_rank0_alone_writes(tiny_base: Path, tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    out = tmp_path / "out"
    # A learning rate too small to change the predictions: no epoch improves on the first, so early
    # stopping (patience 1) ends the run after epoch 2 of 6, on every rank alike.
    result = run_cli(
        *_args(tiny_base, out, "--epochs", "6", "--learning-rate", "1e-9", "--early-stopping-patience", "1"),
        env={
            "GUARD_OUTPUT": str(out),
            "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]),
        },
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # one result line, from the launcher
    assert json.loads(lines[0])["output"] == str(out)
    record = json.loads((out / "training.json").read_text())
    assert record["world_size"] == 2
    assert record["lineage"]["world_size"] == 2 and record["lineage"]["device"] == "cpu"  # the manifest's
    assert record["effective_batch_size"] == 4 * 1 * 2
    assert record["learning_rate"] == 1e-9 and record["hyperparameters"]["learning_rate"] == 1e-9
    ranks = record["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0] | {"rank": 1} == ranks[1], ranks  # same steps, epoch, evaluations, best epoch
    assert ranks[0]["epoch"] == 2.0 and ranks[0]["evaluations"] == 2 and ranks[0]["best_epoch"] == 1.0
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1.0, 2.0]
    # stderr holds JSON lines only (every rank's, torchrun's): no plain-text warning slips through
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    events = [e["event"] for e in logged]
    assert events.count("evaluated") == 2, events  # rank 0's only
    assert events.count("training") == 1 and events.count("trained") == 1, events
    assert not list(out.glob(".checkpoints*"))


def test_cancel_stops_every_rank(tiny_base: Path, tmp_path: Path) -> None:
    seen: list[Progress] = []
    config = TrainConfig(
        task="classification",
        train=FIXTURES / "sentiment_train.tsv",
        validation=FIXTURES / "sentiment_validation.tsv",
        output=tmp_path / "out",
        base=str(tiny_base),
        epochs=50,
        batch_size=4,
        max_length=32,
        progress_bar=False,
    )
    started = time.monotonic()
    with pytest.raises(Cancelled):
        launch(
            config, Launch(nproc_per_node=2), on_progress=seen.append, should_cancel=lambda: len(seen) >= 3
        )
    assert time.monotonic() - started < 120
    steps = [p.step for p in seen if p.stage == "training"]
    assert steps == sorted(set(steps)), "each step reported once, by rank 0"
    assert steps[-1] < seen[-1].total  # stopped long before the 50 epochs
    assert not (tmp_path / "out" / "training.json").exists()


def test_killed_rank_fails_the_run_and_leaves_nothing(tiny_base: Path, tmp_path: Path) -> None:
    stderr_path = tmp_path / "stderr"
    cmd = [sys.executable, "-m", "tuneserve.cli", "--log-format", "json"]
    with stderr_path.open("w") as stderr:
        cli = subprocess.Popen(
            [*cmd, *map(str, _args(tiny_base, tmp_path / "out", "--epochs", "200"))],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        me = psutil.Process(cli.pid)
        deadline = time.monotonic() + 180
        while '"event": "training"' not in stderr_path.read_text():  # ranks have met and train
            assert cli.poll() is None, stderr_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.3)
        family = me.children(recursive=True)
        workers = [p for p in family if "tuneserve.trainer.torchrun" not in p.cmdline()]
        ranks = {p.environ().get("RANK"): p for p in workers}
        assert set(ranks) == {"0", "1"}, [p.cmdline() for p in family]
        os.kill(ranks["1"].pid, signal.SIGKILL)
        stdout, _ = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode != 0
    assert stdout == ""
    error = stderr_path.read_text()
    assert f"rank 1 (local rank 1, pid {ranks['1'].pid}) was killed by SIGKILL" in error, error[-3000:]
    alive = psutil.wait_procs(family, timeout=10)[1]
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--nnodes", "2"), "--nnodes > 1 needs --rdzv-endpoint"),
        (("--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"), "--node-rank 2 must be in [0, 1]"),
        (("--nnodes", "2", "--rdzv-endpoint", "nohost"), "expected HOST:PORT"),
    ],
)
def test_launch_options_are_checked_before_anything_starts(
    tiny_base: Path, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_cli(*_args(tiny_base, tmp_path / "out", *extra), check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
