"""A model as ModelService returns it (``remote.as_dict`` of a ``Model``), as text for people to read:
`tuneserve models get NAME --output text`. Its JSON form (the default) is the contract for scripts."""

from __future__ import annotations

import json
from typing import Any


def render_model(model: dict[str, Any]) -> str:
    """The model, then each version with its metrics and lineage."""
    task = model.get("task", "TASK_UNSPECIFIED").removeprefix("TASK_").lower()
    serving = model.get("serving_version") or "none"
    lines = [f"model {model['name']} ({task}), serving version {serving}"]
    if model.get("load_error"):
        lines.append(f"  load error: {model['load_error']}")
    for version in model.get("versions", []):
        lines.extend(_version(version))
    return "\n".join(lines)


def _version(v: dict[str, Any]) -> list[str]:
    quantization = v.get("quantization", "QUANTIZATION_UNSPECIFIED").removeprefix("QUANTIZATION_").lower()
    metrics = ", ".join(f"{k} {value:.4f}" for k, value in sorted(v.get("metrics", {}).items()))
    head = f"version {v['version']}{' (serving)' if v.get('serving') else ''}: {quantization}"
    lines = [head + (f", {metrics}" if metrics else ""), f"  base model   {v.get('base_model', '')}"]
    lineage = v.get("lineage")
    if not lineage:
        return [*lines, "  lineage      not recorded (exported before tuneserve recorded it)"]
    return lines + lineage_lines(lineage)


def lineage_lines(lineage: dict[str, Any]) -> list[str]:
    """The lineage of a version (the ``Lineage`` message as a dict), one fact per line."""
    base = lineage.get("base_model", {})
    origin = base.get("source", "")
    if base.get("package"):
        origin += f" {base['package']}=={base.get('package_version', '?')}"
    lines = [
        "  lineage",
        f"    base       {base.get('name', '')} ({origin}) revision {base.get('revision') or 'unknown'}",
    ]
    for key, label in (("training_data", "training"), ("validation_data", "validation")):
        data = lineage.get(key)
        if data:
            lines.append(f"    {label:<10} {data.get('rows', 0)} rows, sha256 {data.get('sha256', '')}")
    commit = lineage.get("tuneserve_git_commit") or "git commit unknown"
    lines.append(f"    tuneserve  {lineage.get('tuneserve_version') or 'unknown'} ({commit})")
    lines.append(
        f"    run        seed {lineage.get('seed', 0)}, device {lineage.get('device', '')}, "
        f"world size {lineage.get('world_size', 1)}"
    )
    search = lineage.get("search")
    if not search:
        lines.append("    search     none")
        return lines
    trials = search.get("trials")
    count = len(trials) if isinstance(trials, list) else trials
    lines.append(f"    search     {count} trials")
    lines.extend(
        f"      {key}: {json.dumps(value, sort_keys=True)}"
        for key, value in search.items()
        if key != "trials"
    )
    return lines
