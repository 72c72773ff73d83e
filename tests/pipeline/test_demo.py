"""`tuneserve demo` end to end (on the tiny local BERT): the steps it logs, what it publishes, that it is
seeded, and that the shipped demo data is exactly what scripts/make_demo_data.py writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import run_cli
from tuneserve.localstore import LocalModelStore
from tuneserve.pipeline.demo import DATA, DEMOS, SEED

REPO = Path(__file__).resolve().parents[2]


def _demo_events(stderr: str) -> list[dict]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "demo"]


def test_demo_logs_each_step_publishes_both_models_and_is_seeded(tiny_base: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = run_cli("demo", "--model-root", root, "--base", tiny_base)

    events = _demo_events(first.stderr)
    for index, (name, spec) in enumerate(DEMOS.items(), 1):
        steps = [e for e in events if e["model"] == name]
        assert steps[0]["step"] == "building" and steps[0]["models"] == f"{index}/{len(DEMOS)}"
        n = spec.epochs
        expected = ["building"]
        for k in range(1, n + 1):
            expected += [f"training {k}/{n}", f"evaluated {k}/{n}"]
        expected += ["exporting", "quantizing", "measuring", "measuring", "done"]
        assert [f"{e['step']} {e['epoch']}" if "epoch" in e else e["step"] for e in steps] == expected
        assert [e["detail"] for e in steps if e["step"] == "measuring"] == [
            "measuring fp32 ONNX",
            "measuring int8-dynamic ONNX",
        ]
        assert steps[-1]["version"] == 1 and "cpu_seconds" in steps[-1]
    assert [e["model"] for e in events if e["step"] == "building"] == list(DEMOS)
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == list(DEMOS)

    store = LocalModelStore(root)
    for name, spec in DEMOS.items():
        manifest = store.open_version(name).manifest
        assert manifest.task == spec.task and manifest.max_length == spec.max_length
        assert manifest.training["hyperparameters"]["seed"] == SEED
        assert manifest.training["hyperparameters"]["epochs"] == spec.epochs
        assert manifest.lineage is not None and manifest.lineage.seed == SEED
        assert manifest.lineage.base_model.source == "folder" and manifest.lineage.data["train"].rows > 0

    again = run_cli("demo", "--model-root", root, "--base", tiny_base)
    assert [e["step"] for e in _demo_events(again.stderr)] == ["present"] * len(DEMOS)
    assert all("already at" in line for line in again.stdout.splitlines())

    run_cli("demo", "--model-root", root, "--base", tiny_base, "--force")
    for name in DEMOS:
        one, two = (store.open_version(name, v).manifest for v in (1, 2))
        assert store.serving_version(name) == 2
        assert two.metrics == one.metrics  # same seed, same data: the same model


def test_shipped_demo_data_is_what_the_script_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, REPO / "scripts" / "make_demo_data.py", "--out", tmp_path],
        check=True,
        capture_output=True,
    )
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file())
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
