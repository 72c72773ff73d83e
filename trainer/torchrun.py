"""``python -m tuneserve.trainer.torchrun [torchrun options] -m MODULE ARGS``: torch.distributed.run (the
``torchrun`` command), keeping what failed.

torchrun reports a failed rank as text in its log. This runs it through its own API and, when a rank
fails, writes its ``ChildFailedError`` as JSON to ``$TUNESERVE_TORCHRUN_FAILURES`` (each failed rank: rank,
local rank, pid, exit code, signal, and the error from its elastic error file), for the launcher to name
the rank in the job's error. It stops (SIGTERM to itself: torchrun then stops its ranks) when its parent is
gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tuneserve import logs
from tuneserve.trainer.launch import exit_with_parent


def _failures(exc: Any) -> list[dict[str, Any]]:
    """The failures of a ChildFailedError, the first to fail first."""
    found = []
    for rank, failure in sorted(exc.failures.items(), key=lambda kv: (kv[1].timestamp, kv[0])):
        message = failure.message
        if isinstance(message, dict):
            message = message.get("message", "")
        if not Path(failure.error_file).is_file():
            message = ""  # no error file (a signal): torchrun's stand-in text, not the rank's error
        found.append(
            {
                "rank": rank,
                "local_rank": failure.local_rank,
                "pid": failure.pid,
                "exitcode": failure.exitcode,
                "signal": failure.signal_name() if failure.exitcode < 0 else None,
                "error": message,
            }
        )
    return found


def main(argv: list[str]) -> int:
    exit_with_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
    logs.configure(
        os.environ.get("TUNESERVE_LOG_LEVEL", "info"), os.environ.get("TUNESERVE_LOG_FORMAT", "auto")
    )
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        failures = _failures(exc)
        target = os.environ.get("TUNESERVE_TORCHRUN_FAILURES")
        if target:
            Path(target).write_text(json.dumps(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
