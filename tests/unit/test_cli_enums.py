"""The CLI's choices map to the generated proto enums by name, never by hard-coded numbers."""

from __future__ import annotations

import click
import pytest

from tuneserve import cli
from tuneserve.v1 import common_pb2, training_pb2


def _choices(command: click.Command, name: str) -> list[str]:
    option = next(p for p in command.params if p.name == name)
    assert isinstance(option.type, click.Choice)
    return list(option.type.choices)


@pytest.mark.parametrize(
    ("command", "option", "enum", "names"),
    [
        (
            cli.main.commands["train"],
            "quantization",
            "Quantization",
            [
                "QUANTIZATION_INT8_DYNAMIC",
                "QUANTIZATION_INT8_STATIC",
                "QUANTIZATION_FP16",
                "QUANTIZATION_NONE",
            ],
        ),
        (
            cli.main.commands["train"],
            "promotion_policy",
            "PromotionPolicy",
            ["PROMOTION_POLICY_PROMOTE_IF_BETTER", "PROMOTION_POLICY_REGISTER_ONLY"],
        ),
        (cli.main.commands["train"], "task", "Task", ["TASK_CLASSIFICATION", "TASK_TOKEN_CLASSIFICATION"]),
        (
            cli.jobs.commands["list"],
            "state",
            "JobState",
            [f"JOB_STATE_{s}" for s in ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")],
        ),
    ],
)
def test_every_choice_maps_to_its_enum_by_name(command, option, enum, names) -> None:
    kind = getattr(common_pb2, enum, None) or getattr(training_pb2, enum)
    got = [kind.Name(cli.enum_value(enum, choice)) for choice in _choices(command, option)]
    assert got == names
    assert cli.enum_value(enum, None) == 0
