"""Validate rendered manifests offline: `kustomize build OVERLAY | python deploy/kubernetes/validate.py`.

Every object is checked (strictly: unknown fields fail) against the Kubernetes schemas that
kubernetes-validate ships, for each version given with -k. ServiceMonitor and PrometheusRule are CRDs those
schemas lack; they are checked here instead: the ServiceMonitor's shape and that each Service it selects
has its named port, and each rule's required fields (promtool checks the rules' PromQL in
deploy/monitoring/alerts.yaml, which a unit test keeps equal to the PrometheusRule).

Then what each Deployment runs (check_workloads): its image is one of the Dockerfile's targets
(`tuneserve:serve-cpu`, `serve-gpu`, `train`), it runs the image's entrypoint with `serve`, training is on
in the trainer (the `train` image, one replica, Recreate) and explicitly off in every serving Deployment,
and GPU settings come with an image that can use the GPU.
"""

from __future__ import annotations

import argparse
import sys

import kubernetes_validate
import yaml

# The Dockerfile's targets: what each can do (tests/unit/test_deploy_files.py keeps this table in step).
IMAGE = "tuneserve"
TARGETS = {
    "serve-cpu": {"train": False, "gpu": False},
    "serve-gpu": {"train": False, "gpu": True},
    "train": {"train": True, "gpu": True},
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
GPU_ENV = {"TUNESERVE_DEVICE", "TUNESERVE_TRAINING__DEVICE"}
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
# The endpoint fields used here or likely in an overlay; anything else is probably a typo.
ENDPOINT_FIELDS = {
    "port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "params", "relabelings",
    "metricRelabelings", "tlsConfig", "authorization", "bearerTokenSecret",
}  # fmt: skip


def check_service_monitor(sm: dict, services: list[dict]) -> list[str]:
    name = sm.get("metadata", {}).get("name")
    spec = sm.get("spec") or {}
    errors = []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    endpoints = spec.get("endpoints") or []
    if not selector:
        errors.append(f"ServiceMonitor {name}: spec.selector.matchLabels is empty")
    if not endpoints:
        errors.append(f"ServiceMonitor {name}: spec.endpoints is empty")
    selected = [
        s for s in services if selector and selector.items() <= (s["metadata"].get("labels") or {}).items()
    ]
    if not selected:
        errors.append(f"ServiceMonitor {name}: selects no Service")
    if any(s["spec"].get("clusterIP") == "None" for s in selected):
        errors.append(f"ServiceMonitor {name}: selects a headless Service (its pods would be scraped twice)")
    for ep in endpoints:
        if not ep.get("port") or not str(ep.get("path", "")).startswith("/"):
            errors.append(f"ServiceMonitor {name}: endpoint {ep} needs a port name and a path")
        if unknown := sorted(set(ep) - ENDPOINT_FIELDS):
            errors.append(f"ServiceMonitor {name}: unknown endpoint fields {unknown}")
        for s in selected:
            ports = {p.get("name") for p in s["spec"].get("ports", [])}
            if ep.get("port") not in ports:
                service = s["metadata"]["name"]
                errors.append(f"ServiceMonitor {name}: Service {service} has no port {ep.get('port')}")
    return errors


def check_prometheus_rule(rule: dict) -> list[str]:
    name = rule.get("metadata", {}).get("name")
    groups = (rule.get("spec") or {}).get("groups") or []
    errors = [] if groups else [f"PrometheusRule {name}: spec.groups is empty"]
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            errors.append(f"PrometheusRule {name}: group {group.get('name')!r} needs a name and rules")
        for r in group.get("rules") or []:
            label = r.get("alert") or r.get("record")
            if not label or not r.get("expr") or ("alert" in r) == ("record" in r):
                errors.append(f"PrometheusRule {name}: rule {label!r} needs an expr and one of alert/record")
            if unknown := sorted(set(r) - RULE_FIELDS):
                errors.append(f"PrometheusRule {name}: rule {label!r} has unknown fields {unknown}")
    return errors


def _pod_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def check_container(label: str, component: str | None, container: dict) -> list[str]:
    """What one tuneserve container runs: image target, command, training and GPU use."""
    where = f"{label} container {container.get('name')}"
    image = str(container.get("image", ""))
    name, _, target = image.partition(":")
    if name != IMAGE or target not in TARGETS:
        wanted = ", ".join(f"{IMAGE}:{t}" for t in TARGETS)
        return [f"{where}: image {image!r} is none of the Dockerfile's targets ({wanted})"]
    errors = []
    if "command" in container or container.get("args") != ["serve"]:
        errors.append(
            f"{where}: runs {container.get('command')} {container.get('args')}, not `tuneserve serve`"
        )
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    training = env.get("TUNESERVE_TRAINING__ENABLED")
    if component == "training":
        if target != "train":
            errors.append(f"{where}: the trainer runs {image}, which has no torch; it needs {IMAGE}:train")
        if training != "true":
            errors.append(f"{where}: the trainer needs TUNESERVE_TRAINING__ENABLED=true, not {training!r}")
    elif training != "false":
        # Training is on by default: a serving replica must turn it off, or it would own the job store.
        errors.append(
            f"{where}: a serving container needs TUNESERVE_TRAINING__ENABLED=false, not {training!r}"
        )
    limits = (container.get("resources") or {}).get("limits") or {}
    uses_gpu = "nvidia.com/gpu" in limits or any(env.get(k) == "cuda" for k in GPU_ENV)
    if uses_gpu and not TARGETS[target]["gpu"]:
        errors.append(f"{where}: asks for a GPU, but {image} cannot use one")
    if target == "serve-gpu" and "nvidia.com/gpu" not in limits:
        errors.append(f"{where}: {image} without an nvidia.com/gpu limit")
    return errors


def check_workloads(docs: list[dict]) -> list[str]:
    """Each workload runs the tuneserve image meant for it; exactly one trainer owns the job store."""
    errors = []
    trainers = []
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        label = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
        component = (doc.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component")
        if component == "training":
            trainers.append(label)
            spec = doc.get("spec") or {}
            if (
                doc["kind"] != "Deployment"
                or spec.get("replicas") != 1
                or spec.get("strategy") != {"type": "Recreate"}
            ):
                errors.append(
                    f"{label}: the trainer must be a Deployment of one replica with strategy Recreate"
                )
        for container in _pod_spec(doc).get("containers") or []:
            errors += check_container(label, component, container)
    if len(trainers) != 1:
        errors.append(f"expected one trainer (app.kubernetes.io/component: training), found {trainers}")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", action="append", default=None)
    parser.add_argument("files", nargs="*", type=argparse.FileType("r"), default=[sys.stdin])
    args = parser.parse_args()
    versions = args.kubernetes_version or ["1.31.0", kubernetes_validate.latest_version()]
    docs = [d for f in args.files for d in yaml.safe_load_all(f) if d]
    services = [d for d in docs if d.get("kind") == "Service"]
    errors: list[str] = []
    for doc in docs:
        label = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
            if doc["kind"] == "ServiceMonitor":
                errors += check_service_monitor(doc, services)
            else:
                errors += check_prometheus_rule(doc)
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
                where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
                errors.append(f"{label} (Kubernetes {version}) at /{where}: {getattr(exc, 'message', exc)}")
    errors += check_workloads(docs)
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(docs)} objects, Kubernetes {', '.join(versions)}: {'FAILED' if errors else 'valid'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
