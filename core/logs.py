"""Structured logging: one JSON object per line (or readable key=value lines on a terminal).

A logged exception keeps its traceback: in JSON as the ``exception`` string (``exc_info`` resolved), on a
terminal as the console renderer prints it; for structlog and standard-library records alike. Python
warnings are logged records too, and ``adopt_library_loggers`` routes the ML libraries' own loggers (which
print plain text to stderr) through the same handler.

Progress bars only on a terminal: when stderr is not one, ``configure`` turns off every tqdm bar and
Hugging Face Hub's (``TQDM_DISABLE``, ``HF_HUB_DISABLE_PROGRESS_BARS``, inherited by child processes such
as training jobs), so that a redirected stderr holds nothing but JSON lines.

A line logged while an OpenTelemetry span is current carries its ``trace_id`` and ``span_id`` (hex, as
trace back ends show them), so that logs and traces of one call can be joined.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

# Libraries that attach their own plain-text stderr handler to their root logger when first imported.
LIBRARY_LOGGERS = ("transformers", "optimum", "huggingface_hub", "datasets")
_current = ("info", "auto")  # what ``configure`` was last given, for child processes to log alike


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog, the standard library's logging and warnings to stderr in one format; no progress
    bars unless stderr is a terminal (call it before importing tqdm: tqdm reads TQDM_* at import)."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    global _current
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    _current = (level, fmt)
    renderer: list[structlog.typing.Processor] = (
        [structlog.dev.ConsoleRenderer(colors=False)]
        if fmt == "console"
        else [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    adopt_library_loggers()


def current() -> tuple[str, str]:
    """The level and format (json or console) of the last ``configure``, to configure a child the same."""
    return _current


def add_trace_ids(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """structlog processor: the current span's trace and span ids, if OpenTelemetry is in use and a span is
    recording (nothing is imported here: without tracing, the check is one dictionary look-up)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return event
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", f"{ctx.trace_id:032x}")
        event.setdefault("span_id", f"{ctx.span_id:016x}")
    return event


def adopt_library_loggers() -> None:
    """Send the records of ``LIBRARY_LOGGERS`` through the root handler instead of their own; call it again
    after importing one of them (each adds its handler once, at its first import)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
