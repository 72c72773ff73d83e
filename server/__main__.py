"""``python -m tuneserve.server [flags]``: ``tuneserve serve`` with JSON logs (level: TUNESERVE_LOG_LEVEL)."""

from __future__ import annotations

import os

from tuneserve import logs
from tuneserve.server.cli import serve

if __name__ == "__main__":
    logs.configure(
        os.environ.get("TUNESERVE_LOG_LEVEL", "info"), os.environ.get("TUNESERVE_LOG_FORMAT", "json")
    )
    serve(prog_name="tuneserve serve")
