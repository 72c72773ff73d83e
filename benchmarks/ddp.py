"""DDP benchmark: examples/s and final accuracy with 1 training process vs 2 gloo processes (torchrun), at
the same effective batch size, on a slice of SST-2.

    python benchmarks/ddp.py [--data ../shared/data/sst2] [--train-examples 2000] [--validation-examples 500]
                             [--epochs 1] [--batch-size 32] [--out benchmarks/results/ddp.json]

Both set-ups fine-tune the packaged all-MiniLM-L6-v2 with the same seed and learning rate: one process
with ``--batch-size B``, and ``--nproc-per-node 2`` with ``--batch-size B/2`` (effective batch B in both).
They run in ABBA order (1, 2, 2, 1 processes; ``--rounds`` times), so that a host whose load drifts
(other work on it) weighs on both alike; the load average is recorded around each run. The slice (the
first rows of train.tsv and dev.tsv) is written to a temporary folder, never into the repository. Prints
one JSON object: per run, the trainer's examples/s (training.json, all ranks together), the command's
wall time, the threads per process and the best validation accuracy; per set-up, the medians. On a small
CPU host, expect little or no gain (the ranks share the cores; gloo's all-reduce adds to each step): the
point is that the result is the same within noise. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _slice(src: Path, dst: Path, rows: int) -> None:
    """The header and the first ``rows`` rows of a TSV, with its columns renamed to text/label."""
    lines = src.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines[1 : rows + 1] if line.strip()]
    dst.write_text("text\tlabel\n" + "\n".join(body) + "\n", encoding="utf-8")


def _run(data: Path, out: Path, nproc: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        *(sys.executable, "-m", "tuneserve.cli", "--log-format", "json", "train"),
        *("--task", "classification", "--train", str(data / "train.tsv")),
        *("--validation", str(data / "validation.tsv"), "--output", str(out)),
        *("--epochs", str(args.epochs), "--batch-size", str(batch), "--max-length", str(args.max_length)),
        *("--learning-rate", str(args.learning_rate), "--seed", "42", "--nproc-per-node", str(nproc)),
    ]
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load_before = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    record = json.loads((out / "training.json").read_text())
    return {
        "processes": nproc,
        "per_process_batch_size": batch,
        "effective_batch_size": record["effective_batch_size"],
        "threads_per_process": threads,
        "examples_per_second": record["examples_per_second"],
        "train_seconds": record["seconds"],
        "wall_seconds": round(wall, 1),
        "accuracy": round(record["metrics"]["accuracy"], 4),
        "best_epoch": record["best_epoch"],
        "load_average_before_after": [load_before, round(os.getloadavg()[0], 2)],
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one set-up's runs."""
    return {
        key: round(statistics.median(r[key] for r in runs), 4)
        for key in ("examples_per_second", "wall_seconds", "accuracy")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--validation-examples", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32, help="Effective batch size (even).")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--rounds", type=int, default=1, help="ABBA rounds (each: 4 runs).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    if args.batch_size % 2:
        raise SystemExit("--batch-size must be even: 2 processes take half each")
    with tempfile.TemporaryDirectory(prefix="tuneserve-bench-ddp-") as folder:
        work = Path(folder)
        data = work / "data"
        data.mkdir()
        _slice(args.data / "train.tsv", data / "train.tsv", args.train_examples)
        _slice(args.data / "dev.tsv", data / "validation.tsv", args.validation_examples)
        runs = [
            _run(data, work / f"run-{i}", n, args.batch_size // n, args)
            for i, n in enumerate([1, 2, 2, 1] * args.rounds)
        ]
    one, two = (_summary([r for r in runs if r["processes"] == n]) for n in (1, 2))
    figures = {
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "data": {
            "source": "sst2",
            "train_examples": args.train_examples,
            "validation_examples": args.validation_examples,
        },
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "runs": runs,
        "one_process": one,
        "two_processes": two,
        "speedup": round(two["examples_per_second"] / one["examples_per_second"], 2),
        "accuracy_difference": round(two["accuracy"] - one["accuracy"], 4),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
