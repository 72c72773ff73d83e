"""The layers of the package point one way: every import, at module level or inside a function, is read.

cli, server          the commands and the gRPC server (the Train RPC runs a pipeline job)
pipeline             train → export orchestration: the Train RPC's job, the demo models
trainer, exporter    fine-tuning (torch) and ONNX export; neither imports the other
core                 model store, tokenization, data readers, evaluation, progress hooks
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Source folder -> the package it installs as (pyproject's hatch sources).
_UPPER = {"trainer", "exporter", "server", "pipeline", "cli"}
_FORBIDDEN: dict[str, set[str]] = {
    "core": _UPPER,
    "trainer": _UPPER - {"trainer"},
    "exporter": _UPPER - {"exporter"},
    "pipeline": {"server", "cli"},
    "server": {"trainer", "exporter", "cli"},
}


def _layer(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] == "core":
        if parts[1] == "pipeline":
            return "pipeline"
        return "cli" if parts[1] == "cli.py" else "core"
    return parts[0]


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import; ``from a import b`` counts as ``a`` and ``a.b``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _violations(layer: str, source: str, name: str) -> list[str]:
    forbidden = _FORBIDDEN.get(layer, set())
    out = set()
    for line, module in _imported(ast.parse(source, name)):
        parts = module.split(".")
        if parts[0] == "tuneserve" and len(parts) > 1 and parts[1] in forbidden:
            out.add(f"{name}:{line} ({layer}) imports tuneserve.{parts[1]}")
    return sorted(out)


def _sources() -> list[Path]:
    folders = ("core", "trainer", "exporter", "server")
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_layer_imports_only_below_itself() -> None:
    violations = []
    for path in _sources():
        violations += _violations(_layer(path), path.read_text(), str(path.relative_to(ROOT)))
    assert violations == []


@pytest.mark.parametrize(
    ("layer", "source", "expected"),
    [
        ("exporter", "from tuneserve.trainer import train\n", 1),
        ("exporter", "def f():\n    from tuneserve import trainer\n", 1),
        ("trainer", "import tuneserve.exporter.export\n", 1),
        ("trainer", "from tuneserve import data, evaluation\n", 0),
        ("core", "from tuneserve.pipeline.job import JobSpec\n", 1),
        ("server", "from tuneserve.pipeline.job import JobSpec\n", 0),
    ],
)
def test_the_check_sees_imports_anywhere(layer: str, source: str, expected: int) -> None:
    assert len(_violations(layer, source, "probe.py")) == expected
