"""`tuneserve train` and `export` with stderr piped: every line is one JSON object (no progress bars)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import FIXTURES


def _piped(*args: str | Path) -> list[dict]:
    """Run the CLI with the default log format (auto) and stderr a pipe; its stderr lines, parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNESERVE_", "TQDM_", "HF_HUB_DISABLE"))}
    cmd = [sys.executable, "-m", "tuneserve.cli", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    records = []
    for line in result.stderr.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line on stderr: {line!r}\n{result.stderr[-3000:]}") from None
    assert all(isinstance(r, dict) and "event" in r and "level" in r for r in records), records
    return records


def test_train_and_export_write_only_json_lines_to_a_pipe(tiny_base: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    trained = _piped(
        "train", "--task", "classification", "--base", tiny_base, "--output", checkpoint,
        "--train", FIXTURES / "sentiment_train.tsv", "--validation", FIXTURES / "sentiment_validation.tsv",
        "--epochs", "2", "--batch-size", "8", "--max-length", "32", "--learning-rate", "1e-3",
    )  # fmt: skip
    assert [r["epoch"] for r in trained if r["event"] == "evaluated"] == [1.0, 2.0]
    exported = _piped(
        "export", checkpoint, "--model-root", tmp_path / "models", "--name", "s", "--int8-mode", "static"
    )
    assert [r["version"] for r in exported if r["event"] == "exported"] == [1]
