"""Search spaces over the training hyperparameters: ``NAME=SPEC`` parsed and checked, without torch or Optuna.

A SPEC is ``LOW:HIGH`` or ``LOW:HIGH:log`` for a number (an integer hyperparameter takes integer bounds and
samples integers), or ``A|B|C`` for a choice. Shared by ``tuneserve train --search`` (a bad SPEC is a usage
error), the Train RPC (``TrainRequest.search``: INVALID_ARGUMENT) and the trainer's search loop
(``tuneserve.trainer.search``), so the three accept exactly the same spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Bounds of the hyperparameters (TrainConfig names; the proto's gradient_accumulation_steps): (check, in
# words). The Train RPC checks fixed values with them, the search checks the bounds of a space.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: 0 < v <= 100, "> 0 and <= 100"),
    "learning_rate": (lambda v: 0 < v <= 1, "> 0 and <= 1"),
    "batch_size": (lambda v: 1 <= v <= 4096, "between 1 and 4096"),
    "max_length": (lambda v: 8 <= v <= 512, "between 8 and 512 (the base model's position limit)"),
    "weight_decay": (lambda v: 0 <= v <= 1, ">= 0 and <= 1"),
    "warmup_ratio": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "gradient_accumulation_steps": (lambda v: 1 <= v <= 1024, "between 1 and 1024"),
    "early_stopping_patience": (lambda v: 0 <= v <= 100, "between 0 and 100"),
    "seed": (lambda v: 0 <= v <= 2**32 - 1, "between 0 and 4294967295 (2^32 - 1)"),
}
# What a search may vary, and the type of each value.
SEARCHABLE: dict[str, type] = {
    "learning_rate": float,
    "epochs": int,
    "batch_size": int,
    "weight_decay": float,
    "warmup_ratio": float,
    "freeze": str,
}
# The space of ``--trials N`` without ``--search``.
DEFAULT_SPACE = {"learning_rate": "1e-5:5e-4:log", "epochs": "2:6", "batch_size": "8|16|32"}


class SpaceError(ValueError):
    """A search dimension that cannot be searched; the message names what is wrong and what is allowed."""


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range (``low``, ``high``, ``log``) or ``choices``."""

    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def spec(self) -> str:
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        return f"{self.low}:{self.high}" + (":log" if self.log else "")

    def as_dict(self) -> dict[str, Any]:
        if self.choices:
            return {"name": self.name, "choices": list(self.choices)}
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dimension:
        return cls(
            data["name"],
            data.get("low"),
            data.get("high"),
            data.get("log", False),
            tuple(data.get("choices", ())),
        )


def parse(text: str) -> Dimension:
    """``NAME=SPEC`` as a checked Dimension; SpaceError otherwise."""
    name, sep, spec = text.partition("=")
    if not sep:
        raise SpaceError(f"{text!r} is not NAME=SPEC (e.g. learning_rate=1e-5:1e-3:log, batch_size=16|32)")
    return parse_spec(name.strip(), spec.strip())


def parse_spec(name: str, spec: str) -> Dimension:
    """A SPEC for ``name``: ``LOW:HIGH``, ``LOW:HIGH:log`` or ``A|B|C``."""
    kind = _kind(name)
    if "|" in spec:
        return dimension(name, choices=spec.split("|"))
    parts = spec.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise SpaceError(
            f"{name}={spec!r}: a SPEC is LOW:HIGH, LOW:HIGH:log or A|B|C (e.g. {name}={_example(name)})"
        )
    if kind is str:
        raise SpaceError(f"{name} takes choices, not a range: e.g. {name}=none|encoder|2")
    try:
        low, high = (kind(float(p)) if kind is int and _whole(p) else kind(p) for p in parts[:2])
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise SpaceError(
            f"{name}={spec!r}: LOW and HIGH must be {what} (e.g. {name}={_example(name)})"
        ) from None
    return dimension(name, low=low, high=high, log=len(parts) == 3)


def dimension(
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    log: bool = False,
    choices: Iterable[Any] = (),
) -> Dimension:
    """A checked Dimension: a known name, a non-empty range within the hyperparameter's bounds (integers for
    an integer hyperparameter, positive for a log range), or valid, distinct choices."""
    kind = _kind(name)
    given = [str(c).strip() for c in choices]
    if given:
        if low is not None or high is not None or log:
            raise SpaceError(f"{name}: give a range (LOW:HIGH) or choices (A|B), not both")
        if any(not c for c in given):
            raise SpaceError(f"{name}: an empty choice in {'|'.join(given)!r}")
        values = tuple(_choice(name, kind, c) for c in given)
        if len(set(values)) != len(values):
            raise SpaceError(f"{name}: the choices {'|'.join(given)!r} repeat a value")
        return Dimension(name, choices=values)
    if low is None or high is None:
        raise SpaceError(f"{name}: give LOW and HIGH, or choices")
    if kind is str:
        raise SpaceError(f"{name} takes choices, not a range: e.g. {name}=none|encoder|2")
    if kind is int and (low != int(low) or high != int(high)):
        raise SpaceError(f"{name} is an integer: LOW and HIGH must be integers, not {low:g}:{high:g}")
    if not low < high:
        raise SpaceError(f"{name}={low:g}:{high:g} is an empty range: LOW must be < HIGH")
    for bound in (low, high):
        _check(name, bound)
    if log and low <= 0:
        raise SpaceError(f"{name}={low:g}:{high:g}:log: a log range needs LOW > 0")
    if kind is int:
        low, high = int(low), int(high)
    return Dimension(name, float(low) if kind is float else low, float(high) if kind is float else high, log)


def space(texts: Iterable[str]) -> dict[str, Dimension]:
    """``NAME=SPEC`` texts as a space; SpaceError for a bad one or a name given twice."""
    out: dict[str, Dimension] = {}
    for text in texts:
        dim = parse(text)
        if dim.name in out:
            raise SpaceError(f"{dim.name} is given twice")
        out[dim.name] = dim
    return out


def default_space() -> dict[str, Dimension]:
    return {name: parse_spec(name, spec) for name, spec in DEFAULT_SPACE.items()}


def _kind(name: str) -> type:
    if name not in SEARCHABLE:
        raise SpaceError(f"{name!r} cannot be searched; searchable: {', '.join(SEARCHABLE)}")
    return SEARCHABLE[name]


def _whole(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except (ValueError, OverflowError):
        return False


def _choice(name: str, kind: type, text: str) -> Any:
    if kind is str:
        if not (text in ("none", "encoder") or (text.isascii() and text.isdigit())):
            raise SpaceError(f"{name}: {text!r} is not 'none', 'encoder' or a number of bottom layers")
        return text
    try:
        value = kind(float(text)) if kind is int and _whole(text) else kind(text)
    except ValueError:
        raise SpaceError(
            f"{name}: the choice {text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    _check(name, value)
    return value


def _check(name: str, value: float) -> None:
    if name in RANGES:
        check, allowed = RANGES[name]
        if value != value or not check(value):
            raise SpaceError(f"{name}: {value:g} is out of range; it must be {allowed}")


def _example(name: str) -> str:
    return {
        "learning_rate": "1e-5:1e-3:log",
        "epochs": "2:6",
        "batch_size": "8:32",
        "weight_decay": "0:0.1",
        "warmup_ratio": "0:0.2",
        "freeze": "none|encoder|2",
    }[name]
