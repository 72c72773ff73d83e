"""Time to first answer: wall and CPU seconds of `make run` until the server logs that it is serving.

python benchmarks/first_answer.py [--dir FOLDER] [--log FILE]

Runs `make run` in FOLDER (default: a fresh `git clone` of this repository into a temporary folder, so
the demo models are built from scratch; uv's package cache is used as it is), waits for the server's
``{"event": "serving"}`` log line, stops the server and prints one JSON object: wall seconds, CPU seconds
(user + system of the whole process tree: make, uv, the demo build and the server) and, as the wall time
depends on what else the machine runs, the load average and CPU count.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def _tree_cpu_seconds(root: psutil.Process) -> float:
    """User + system time of ``root`` and its live descendants, with every child they have reaped."""
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def measure(folder: Path, timeout: float, log: Path | None = None) -> dict:
    load_before = os.getloadavg()
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    root = psutil.Process(proc.pid)
    result: dict = {"folder": str(folder)}
    sink = open(log, "w") if log else None  # noqa: SIM115 - closed below
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if sink:
                sink.write(line)
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                result["wall_seconds"] = round(time.monotonic() - started, 1)
                result["cpu_seconds"] = round(_tree_cpu_seconds(root), 1)
                break
            if time.monotonic() - started > timeout:
                break
        else:
            result["error"] = f"make run exited with {proc.wait()} before serving"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if sink:
            sink.close()
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dir", type=Path, help="run here [default: a fresh clone in a temporary folder]")
    parser.add_argument("--log", type=Path, help="write make run's output here")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    args = parser.parse_args()
    if args.dir:
        print(json.dumps(measure(args.dir, args.timeout, args.log)))
        return
    with tempfile.TemporaryDirectory(prefix="tuneserve-first-answer-") as tmp:
        clone = Path(tmp) / "tuneserve"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        print(json.dumps(measure(clone, args.timeout, args.log)))


if __name__ == "__main__":
    main()
