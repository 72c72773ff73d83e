"""Validate deploy/kserve/ offline: `python deploy/kserve/validate.py [FILE ...]` (default: its *.yaml).

Each ServingRuntime and InferenceService is checked against KServe's own CRD schema (vendored in schemas/,
see schemas/vendor.py for the source commit), strictly: an unknown field fails, as kubectl's server-side
field validation would fail it. Then what KServe would do with them: each InferenceService's modelFormat
and protocolVersion are served by the runtime it names (a ServingRuntime here), its port is one the
runtime's server listens on with the protocol KServe expects on it, and the runtime runs the serve-cpu
image's `tuneserve serve` on /mnt/models, where KServe's storage initializer puts storageUri.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).parent
SCHEMAS = {"ServingRuntime": "servingruntime.json", "InferenceService": "inferenceservice.json"}
IMAGE = "tuneserve:serve-cpu"  # the Dockerfile's target, as deploy/kubernetes/overlays/cpu names it
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts storageUri
# KServe's port names: h2c for gRPC (HTTP/2 cleartext), http1 (or none) for REST.
PORT_NAMES = {"grpc-v2": "h2c", "v2": "http1"}


def strict(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever it lists the fields (structural schemas prune them
    silently; here they fail)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def schema_errors(doc: dict) -> list[str]:
    kind = doc.get("kind")
    name = f"{kind} {(doc.get('metadata') or {}).get('name')}"
    if kind not in SCHEMAS:
        return [f"{name}: not a kind checked here ({', '.join(SCHEMAS)})"]
    schema = json.loads((HERE / "schemas" / SCHEMAS[kind]).read_text())
    if doc.get("apiVersion") != schema["x-api-version"]:
        return [f"{name}: apiVersion {doc.get('apiVersion')!r}, the CRD serves {schema['x-api-version']!r}"]
    validator = jsonschema.Draft7Validator(strict(schema))
    return [
        f"{name}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _flag(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def runtime_errors(runtime: dict) -> list[str]:
    name = f"ServingRuntime {runtime['metadata']['name']}"
    spec = runtime["spec"]
    errors = []
    if "tuneserve" not in {f["name"] for f in spec.get("supportedModelFormats") or []}:
        errors.append(f"{name}: supportedModelFormats lacks tuneserve")
    [container] = spec["containers"]
    args = container.get("args") or []
    if container.get("image") != IMAGE:
        errors.append(f"{name}: image {container.get('image')!r}, expected {IMAGE}")
    if args[:1] != ["serve"] or container.get("command"):
        errors.append(f"{name}: must run the image's entrypoint with `serve` (args[0]) and no command")
    if _flag(args, "--model-root") != MODEL_DIR:
        errors.append(f"{name}: --model-root must be {MODEL_DIR}, where KServe puts storageUri")
    if _flag(args, "--training") is not None or "--no-training" not in args:
        errors.append(f"{name}: training must be off (--no-training): the model root is read-only")
    return errors


def _ports(runtime: dict) -> dict[str, int | None]:
    """The port of each protocol that the runtime's server listens on (None: off)."""
    args = runtime["spec"]["containers"][0].get("args") or []
    http = _flag(args, "--http-port")
    return {"grpc-v2": int(_flag(args, "--port") or 50051), "v2": int(http or 8080) or None}


def service_errors(isvc: dict, runtimes: dict[str, dict]) -> list[str]:
    name = f"InferenceService {isvc['metadata']['name']}"
    model = isvc["spec"]["predictor"].get("model") or {}
    runtime = runtimes.get(model.get("runtime", ""))
    if runtime is None:
        return [f"{name}: runtime {model.get('runtime')!r} is none of {sorted(runtimes)}"]
    errors = []
    formats = {f["name"] for f in runtime["spec"].get("supportedModelFormats") or []}
    if (model.get("modelFormat") or {}).get("name") not in formats:
        errors.append(f"{name}: modelFormat is not one of {sorted(formats)}")
    protocol = model.get("protocolVersion", "v1")
    if protocol not in (runtime["spec"].get("protocolVersions") or []) or protocol not in PORT_NAMES:
        errors.append(f"{name}: protocolVersion {protocol!r}: tuneserve serves {sorted(PORT_NAMES)}")
        return errors
    if not str(model.get("storageUri", "")):
        errors.append(f"{name}: storageUri (a tuneserve model root) is missing")
    ports = model.get("ports") or runtime["spec"]["containers"][0].get("ports") or []
    if len(ports) != 1:
        errors.append(f"{name}: give exactly one port (the one KServe routes to)")
        return errors
    [port] = ports
    if port.get("containerPort") != _ports(runtime)[protocol]:
        errors.append(f"{name}: port {port.get('containerPort')} is not where tuneserve serves {protocol}")
    if port.get("name", "http1") != PORT_NAMES[protocol]:
        errors.append(f"{name}: a {protocol} port is named {PORT_NAMES[protocol]} for KServe")
    return errors


def validate(docs: list[dict]) -> list[str]:
    errors = [e for doc in docs for e in schema_errors(doc)]
    if errors:
        return errors
    runtimes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServingRuntime"}
    for runtime in runtimes.values():
        errors += runtime_errors(runtime)
    for isvc in (d for d in docs if d["kind"] == "InferenceService"):
        errors += service_errors(isvc, runtimes)
    return errors


def main() -> int:
    files = [Path(a) for a in sys.argv[1:]] or sorted(HERE.glob("*.yaml"))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    errors = validate(docs)
    for error in errors:
        print(error, file=sys.stderr)
    print(f"{len(docs)} KServe objects: {'invalid' if errors else 'valid'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
