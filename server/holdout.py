"""A stratified validation hold-out for Train requests that send no validation data.

Each label with ``n >= 2`` examples gives ``round(n * fraction)`` of them (at least 1, at most ``n - 1``) to
the hold-out; a label with one example keeps it for training. An example with several labels (multi-label
classification, a sentence with several entity types) is held out only if every one of its labels keeps an
example on the training side. The order is seeded, so the same request gets the same split.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tuneserve import data as datasets

T = TypeVar("T")

NO_LABEL = ""  # the group of examples without labels (multi-label ``[]``, a sentence of 'O' tags)


class NoHoldout(ValueError):
    """No example can be held out without taking a label's only training example."""


def labels_of(example: Any) -> frozenset[str]:
    """What the hold-out stratifies on: a text's labels, a sentence's entity types."""
    if isinstance(example, datasets.TokenExample):
        kinds = frozenset(tag[2:] for tag in example.tags if tag != "O")
    else:
        kinds = frozenset(example.labels)
    return kinds or frozenset({NO_LABEL})


def split(
    examples: Sequence[T], fraction: float, seed: int, labels: Callable[[T], frozenset[str]] = labels_of
) -> tuple[list[T], list[T]]:
    """(training, held out): stratified as the module says; NoHoldout if nothing can be held out."""
    groups = [labels(ex) for ex in examples]
    counts = Counter(label for group in groups for label in group)
    quota = {label: min(n - 1, max(1, round(n * fraction))) for label, n in counts.items() if n >= 2}
    if not quota:
        raise NoHoldout(_why(counts))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    left, taken = Counter(counts), Counter[str]()
    held: set[int] = set()
    for i in order:
        group = groups[i]
        if all(left[label] >= 2 for label in group) and any(
            taken[label] < quota.get(label, 0) for label in group
        ):
            held.add(i)
            left.subtract(group)
            taken.update(group)
    if not held:
        raise NoHoldout(_why(counts))
    return (
        [ex for i, ex in enumerate(examples) if i not in held],
        [ex for i, ex in enumerate(examples) if i in held],
    )


def _why(counts: Counter[str]) -> str:
    shown = ", ".join(f"{label!r}: {n}" for label, n in sorted(counts.items()) if label != NO_LABEL)
    return (
        "no validation data can be held out of training_data while every label keeps an example for "
        f"training (examples per label: {shown or 'none'}); send validation_data, or at least two "
        "examples of a label"
    )
