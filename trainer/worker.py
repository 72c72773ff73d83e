"""One rank of a DDP run: ``python -m tuneserve.trainer.worker RUN_FOLDER``, started by torchrun.

Every rank runs ``train`` on the ``TrainConfig`` in ``RUN_FOLDER/config.json``. Rank 0 appends its progress
and its result to ``events.jsonl`` and checks for ``cancel`` (see ``launch.py``); the other ranks log
warnings only, so that each log line and event appears once. An exception is recorded in torchrun's
elastic error file (``@record``), from which the launcher names the failed rank and its error. A rank
exits when torchrun is gone, so that a killed launcher leaves no rank behind.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from tuneserve import logs
from tuneserve.trainer import distributed
from tuneserve.trainer.launch import CANCEL, CANCELLED_EXIT, CONFIG, EVENTS, exit_with_parent


class _Events:
    """Rank 0's events, one JSON line each, flushed at once (the launcher follows the file)."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("a", buffering=1, encoding="utf-8")

    def send(self, kind: str, **fields: Any) -> None:
        self._out.write(json.dumps({"type": kind, **fields}) + "\n")
        self._out.flush()


@record
def main(argv: list[str]) -> int:
    exit_with_parent(lambda: os._exit(1))
    run = Path(argv[0])
    main_rank = distributed.is_main()
    level = os.environ.get("TUNESERVE_LOG_LEVEL", "info")
    logs.configure(level if main_rank else "warning", os.environ.get("TUNESERVE_LOG_FORMAT", "auto"))

    from tuneserve.progress import Cancelled, Progress
    from tuneserve.trainer.launch import config_from_json, result_json
    from tuneserve.trainer.train import train

    config = config_from_json(json.loads((run / CONFIG).read_text()))
    events = _Events(run / EVENTS) if main_rank else None

    def on_progress(p: Progress) -> None:
        if events is not None:
            events.send("progress", progress=asdict(p))

    try:
        result = train(config, on_progress=on_progress, should_cancel=(run / CANCEL).exists)
    except Cancelled:
        if events is not None:
            events.send("cancelled")
        distributed.teardown()
        return CANCELLED_EXIT
    distributed.teardown()
    if events is not None:
        events.send("result", result=result_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
