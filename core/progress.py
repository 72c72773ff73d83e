"""Progress reporting and cancellation hooks, for the CLI's bars and the Train RPC's event stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    """A snapshot of a training run: where it is and how it is doing."""

    stage: str  # "training", "evaluating", "exporting", "quantizing", "validating"
    step: int = 0
    total: int = 0
    epoch: float = 0.0
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside a run when its cancel check returns true."""


def no_progress(_: Progress) -> None:
    """A ProgressFn that ignores everything."""


def never() -> bool:
    """A CancelFn that never cancels."""
    return False
