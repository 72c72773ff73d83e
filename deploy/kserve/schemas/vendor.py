"""Vendor the KServe CRD schemas that deploy/kserve/ is validated against, from a kserve checkout.

    python deploy/kserve/schemas/vendor.py /path/to/kserve COMMIT

From ``config/crd/full/serving.kserve.io_{servingruntimes,inferenceservices}.yaml`` at COMMIT it writes
each CRD's served ``openAPIV3Schema`` as JSON here, with ``x-source`` naming the file and commit. What the
manifests here cannot use is dropped to keep the files small: descriptions, ``status``, and in the
InferenceService every component but the predictor and every predictor framework but ``model`` (the
generic one that ``supportedModelFormats`` matches). A manifest that uses a dropped field fails validation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CRDS = {"servingruntimes": "ServingRuntime", "inferenceservices": "InferenceService"}
# The InferenceService predictor's framework-specific specs (superseded by ``model``) and multi-node workers.
PREDICTOR_DROPPED = {
    "huggingface", "lightgbm", "onnx", "paddle", "pmml", "pytorch", "sklearn", "tensorflow", "triton",
    "xgboost", "workerSpec",
}  # fmt: skip


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def main() -> None:
    checkout, commit = Path(sys.argv[1]), sys.argv[2]
    for plural, kind in CRDS.items():
        path = f"config/crd/full/serving.kserve.io_{plural}.yaml"
        text = subprocess.run(
            ["git", "-C", str(checkout), "show", f"{commit}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        crd = yaml.safe_load(text)
        [version] = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
        schema = _strip(version["schema"]["openAPIV3Schema"])
        schema["properties"].pop("status", None)
        if kind == "InferenceService":
            spec = schema["properties"]["spec"]
            spec["properties"] = {"predictor": spec["properties"]["predictor"]}
            for name in PREDICTOR_DROPPED:
                spec["properties"]["predictor"]["properties"].pop(name)
        schema["x-source"] = f"github.com/kserve/kserve {path} at {commit}"
        schema["x-api-version"] = f"{crd['spec']['group']}/{version['name']}"
        out = HERE / f"{kind.lower()}.json"
        out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
