"""``tuneserve export`` onto a full disk: an ``Error:`` line, not a traceback, and nothing published."""

from __future__ import annotations

from pathlib import Path

from helpers import run_cli
from tinydisk import tiny_disk
from tuneserve.localstore import LocalModelStore


def test_export_on_a_full_disk_is_an_error_line(trained: dict[str, Path], tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "1m") as root:
        result = run_cli(
            "export", trained["classification"], "--model-root", root, "--name", "f", check=False
        )
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert error and "No space left on device" in error[0], result.stderr[-2000:]
        assert "nothing was published" in error[0]
        assert LocalModelStore(root).versions("f") == []
        assert not list((root / "f").glob(".tmp-*"))
