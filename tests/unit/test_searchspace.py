"""Search spaces (``--search NAME=SPEC``, TrainRequest.search): what parses, and what is refused and why."""

from __future__ import annotations

import pytest

from tuneserve.searchspace import SpaceError, parse, space


def test_ranges_and_choices_parse_with_their_types() -> None:
    lr = parse("learning_rate=1e-5:1e-3:log")
    assert (lr.low, lr.high, lr.log) == (1e-5, 1e-3, True)
    batch = parse("batch_size=8:32")
    assert (batch.low, batch.high) == (8, 32) and isinstance(batch.low, int) and isinstance(batch.high, int)
    assert parse("batch_size=16|32").choices == (16, 32)
    assert parse("freeze=none|encoder|2").choices == ("none", "encoder", "2")
    assert parse("weight_decay=0:0.1").low == 0.0
    assert set(space(["epochs=2:4", "warmup_ratio=0:0.2"])) == {"epochs", "warmup_ratio"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("learning_rate", "NAME=SPEC"),
        ("dropout=0:1", "cannot be searched"),
        ("learning_rate=abc", "LOW:HIGH"),
        ("learning_rate=1e-3:1e-5", "empty range"),
        ("batch_size=16:16", "empty range"),
        ("batch_size=8.5:32", "integers"),
        ("learning_rate=0:1e-3:log", "out of range"),
        ("weight_decay=0:1:log", "log range needs LOW > 0"),
        ("learning_rate=1e-5:2", "out of range"),
        ("learning_rate=1:2:linear", "LOW:HIGH"),
        ("freeze=0:4", "takes choices"),
        ("freeze=none|all", "'all'"),
        ("batch_size=16|16", "repeat"),
        ("batch_size=16|", "empty choice"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(SpaceError, match=says):
        parse(text)


def test_a_name_given_twice_is_refused() -> None:
    with pytest.raises(SpaceError, match="twice"):
        space(["epochs=2:4", "epochs=3:5"])
