"""Which experiment trackers a training run may report to (``--report-to``, ``TrainRequest.report_to``), and
whether the one asked for is installed; without torch, so that the Train RPC refuses at once.

The trackers themselves are ``tuneserve.trainer.tracking``.
"""

from __future__ import annotations

import importlib.util

REPORT_TO = ("none", "mlflow", "tensorboard")
_MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboard"}


class TrackingUnavailable(RuntimeError):
    """The tracking library asked for is not installed."""


def check(kind: str) -> None:
    """ValueError for an unknown kind; TrackingUnavailable if its library (the tracking extra) is missing."""
    if kind not in REPORT_TO:
        raise ValueError(f"report_to {kind!r}: expected one of {', '.join(REPORT_TO)}")
    module = _MODULES.get(kind)
    if module and importlib.util.find_spec(module) is None:
        raise TrackingUnavailable(
            f"report_to {kind} needs the tracking extra (mlflow-skinny, tensorboard), which is not "
            "installed: install tuneserve[tracking]"
        )
