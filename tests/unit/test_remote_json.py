"""How the CLI prints messages: 64-bit integer fields as numbers, every string as a string."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc")

from tuneserve import remote
from tuneserve.v1 import model_pb2, training_pb2


def test_only_int64_fields_become_numbers() -> None:
    model = model_pb2.Model(
        name="2024",
        serving_version=3,
        versions=[model_pb2.ModelVersion(version=3, labels=["1", "2"], metrics={"accuracy": 0.5})],
    )
    printed = remote.as_dict(model)
    assert printed["name"] == "2024" and printed["serving_version"] == 3
    assert printed["versions"][0]["version"] == 3 and printed["versions"][0]["labels"] == ["1", "2"]
    job = training_pb2.TrainingJob(id="123", model="42", version=7, baseline_version=6)
    assert remote.as_dict(job) == {"id": "123", "model": "42", "version": 7, "baseline_version": 6}
