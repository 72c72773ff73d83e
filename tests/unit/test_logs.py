"""JSON logs keep tracebacks, from structlog and from the standard library's logging."""

from __future__ import annotations

import json
import os
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


LIBRARIES = """
import logging, sys, warnings
from tuneserve import logs
plain = logging.getLogger("transformers")  # as transformers does at import: its own plain-text handler
plain.addHandler(logging.StreamHandler())
plain.propagate = False
logs.configure("info", "auto")
from tqdm import tqdm  # imported after configure, as the CLI and the job worker import it
logs.adopt_library_loggers()
logging.getLogger("transformers.configuration_utils").warning("library warning")
warnings.warn("python warning")
for _ in tqdm(range(3), desc="bar"):
    pass
"""


def test_piped_stderr_gets_only_json_lines_from_libraries_warnings_and_bars() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TQDM_", "HF_HUB_DISABLE"))}
    result = subprocess.run(
        [sys.executable, "-c", LIBRARIES], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # no bar, no plain text
    events = [(r["level"], r["event"].splitlines()[0]) for r in lines]
    assert events[0] == ("warning", "library warning")
    assert events[1][0] == "warning" and "UserWarning: python warning" in events[1][1], events
    assert len(events) == 2, events
