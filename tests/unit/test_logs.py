"""JSON logs keep tracebacks, from structlog and from the standard library's logging."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import logging, structlog
from tuneserve import logs
logs.configure("info", "json")
log = structlog.get_logger("probe")
try:
    1 / 0
except ZeroDivisionError as exc:
    log.error("structlog exc_info true", exc_info=True)
    log.error("structlog exc_info exception", exc_info=exc)
    log.exception("structlog exception")
    logging.getLogger("stdlib").exception("stdlib exception")
    logging.getLogger("stdlib").error("stdlib exc_info exception", exc_info=exc)
"""


def test_json_logs_render_tracebacks() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 5, result.stderr
    for line in lines:
        assert "exc_info" not in line, line
        assert line["exception"].startswith("Traceback"), line
        assert "ZeroDivisionError: division by zero" in line["exception"], line
