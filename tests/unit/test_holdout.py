"""The stratified hold-out of Train requests without validation data."""

from __future__ import annotations

from collections import Counter

import pytest

from tuneserve.data import TextExample, TokenExample
from tuneserve.server import holdout


def _texts(counts: dict[str, int]) -> list[TextExample]:
    return [TextExample(f"{label} {i}", (label,), i) for label, n in counts.items() for i in range(n)]


def _labels(examples: list[TextExample]) -> Counter[str]:
    return Counter(label for ex in examples for label in ex.labels)


def test_every_label_keeps_one_for_training_and_gives_one_to_validation() -> None:
    examples = _texts({"positive": 20, "negative": 2, "rare": 1})
    train, held = holdout.split(examples, 0.1, seed=42)
    assert _labels(held) == {"positive": 2, "negative": 1}  # 10 % of each label, at least one
    assert _labels(train) == {"positive": 18, "negative": 1, "rare": 1}
    assert holdout.split(examples, 0.1, seed=42) == (train, held), "seeded"


def test_nothing_to_hold_out_is_refused_with_the_counts() -> None:
    with pytest.raises(holdout.NoHoldout, match=r"'negative': 1, 'positive': 1"):
        holdout.split(_texts({"positive": 1, "negative": 1}), 0.1, seed=0)


def test_multi_label_and_entities_never_take_a_labels_last_example() -> None:
    multi = [
        TextExample("a", ("x", "only"), 1),
        TextExample("b", ("x",), 2),
        TextExample("c", ("x", "y"), 3),
        TextExample("d", ("y",), 4),
    ]
    train, held = holdout.split(multi, 0.5, seed=1)
    assert "only" in _labels(train) and set(_labels(held)) == {"x", "y"}
    assert all(_labels(train)[label] >= 1 for label in ("x", "y"))
    sentences = [
        TokenExample(("Ann", "runs"), ("B-PER", "O"), 1),
        TokenExample(("Bob", "runs"), ("B-PER", "O"), 2),
        TokenExample(("in", "Rome"), ("O", "B-LOC"), 3),
    ]
    train, held = holdout.split(sentences, 0.1, seed=0)
    assert [ex.tags for ex in held] == [("B-PER", "O")] and len(train) == 2
