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

The Kubernetes training executor (check_training_jobs): the trainer that runs its jobs as Kubernetes
Jobs holds no GPU, is the one pod that mounts an API token, and its ServiceAccount is bound to a Role with
exactly the rules the executor needs (``tuneserve.server.kubejobs.RBAC_RULES``); the Jobs' ServiceAccount
exists and has no rights. The Job (and the headless Service of a multi-node job) that the executor would
render from the trainer's own settings is validated like every other object.

And where the model store lives (check_storage): AWS credentials are never literal values or ConfigMap
data. A local model root lies on a PersistentVolumeClaim that the serving pods and the trainer share. An
s3:// model root (the object-store component) is the same in every pod, and with it no claim is
ReadWriteMany, serving pods mount no claim, the trainer keeps its job store on a ReadWriteOnce claim, each
pod takes its credentials from a Secret, and TUNESERVE_CACHE_DIR is an emptyDir whose sizeLimit has
headroom over TUNESERVE_CACHE_MAX_BYTES.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import PurePosixPath
from typing import NamedTuple

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
# The model root of a container that sets none: the images' ENV (Dockerfile).
IMAGE_MODEL_ROOT = "/models"
# Never literal values in a manifest (or ConfigMap data): from a Secret, or from web identity (IRSA).
AWS_SECRETS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
# The cache may pass TUNESERVE_CACHE_MAX_BYTES by the versions that serve (never evicted) while another
# downloads; the kubelet evicts a pod whose emptyDir outgrows its sizeLimit.
CACHE_HEADROOM = 1.25
CLAIM_VOLUMES = ("persistentVolumeClaim", "ephemeral")
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
_UNITS = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18} | {
    f"{p}i": 1024 ** (i + 1) for i, p in enumerate("KMGTPE")
}


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


def quantity(text: object) -> float | None:
    """Bytes of a Kubernetes quantity (``6Gi``, ``500M``, ``1024``); None if it is none."""
    match = _QUANTITY.match(str(text))
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


class Pod(NamedTuple):
    """One tuneserve container of a workload, with its environment and its pod's volumes."""

    where: str
    component: str | None
    container: dict
    env: dict[str, str | None]
    sources: dict[str, str]
    volumes: dict[str, dict]


def _from_config_maps(container: dict, docs: list[dict]) -> dict[str, str]:
    """The variables a container's envFrom ConfigMaps (found in ``docs``) give it."""
    config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    values = {}
    for ref in container.get("envFrom") or []:
        if "configMapRef" in ref:
            data = (config_maps.get(ref["configMapRef"].get("name")) or {}).get("data") or {}
            values |= {ref.get("prefix", "") + key: value for key, value in data.items()}
    return values


def effective_env(container: dict, docs: list[dict]) -> tuple[dict[str, str | None], dict[str, str]]:
    """What a container's environment holds, as the kubelet builds it: ``(values, sources)``. envFrom
    ConfigMaps (found in ``docs``) first, then ``env``, which overrides them. A source is ``literal``,
    ``configMap``, ``secret`` or ``other`` (fieldRef, ...); values from Secrets and others are None."""
    config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    values: dict[str, str | None] = dict(_from_config_maps(container, docs))
    sources = dict.fromkeys(values, "configMap")
    for e in container.get("env") or []:
        name = e.get("name")
        if "value" in e or "valueFrom" not in e:
            values[name], sources[name] = e.get("value", ""), "literal"
            continue
        source = e["valueFrom"]
        values[name] = None
        sources[name] = (
            "secret" if "secretKeyRef" in source else "configMap" if "configMapKeyRef" in source else "other"
        )
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            values[name] = ((config_maps.get(ref.get("name")) or {}).get("data") or {}).get(ref.get("key"))
    return values, sources


def _mount(path: str, container: dict, volumes: dict[str, dict]) -> dict | None:
    """The volume that ``path`` lies on (the longest mountPath above it), or None."""
    found = None
    for m in container.get("volumeMounts") or []:
        mount = PurePosixPath(m.get("mountPath", "/"))
        if PurePosixPath(path).is_relative_to(mount) and (
            found is None or len(mount.parts) > len(PurePosixPath(found["mountPath"]).parts)
        ):
            found = m
    return volumes.get(found.get("name")) if found else None


def _claim_modes(volume: dict, claims: dict[str, dict]) -> list[str] | None:
    """The access modes of a volume's claim: a PersistentVolumeClaim in ``claims``, or an ephemeral one."""
    if "ephemeral" in volume:
        template = (volume["ephemeral"] or {}).get("volumeClaimTemplate") or {}
        return (template.get("spec") or {}).get("accessModes")
    claim = claims.get((volume.get("persistentVolumeClaim") or {}).get("claimName")) or {}
    return (claim.get("spec") or {}).get("accessModes")


def _check_object_store_pod(pod: Pod, claims: dict[str, dict]) -> list[str]:
    """One pod on an s3:// model root: no shared volume, credentials from a Secret, a bounded cache."""
    errors = []
    where, volumes, env = pod.where, pod.volumes, pod.env
    claimed = {n: v for n, v in volumes.items() if any(k in v for k in CLAIM_VOLUMES)}
    if pod.component != "training" and claimed:
        errors.append(f"{where}: a serving pod mounts no volume claim, not {sorted(claimed)}")
    if pod.component == "training":
        for name, volume in claimed.items():
            if (modes := _claim_modes(volume, claims)) not in (["ReadWriteOnce"], ["ReadWriteOncePod"]):
                errors.append(f"{where}: volume {name} must be a ReadWriteOnce claim, not {modes}")
        jobs = env.get("TUNESERVE_TRAINING__JOBS_DIR")
        volume = _mount(jobs, pod.container, volumes) if jobs else None
        if not volume or not any(k in volume for k in CLAIM_VOLUMES):
            errors.append(f"{where}: TUNESERVE_TRAINING__JOBS_DIR ({jobs}) must lie on its own claim")
    # With IRSA the Secret may be absent (optional), but the reference is where keys go.
    from_secret = any(
        "secretRef" in ref and not ref.get("prefix") for ref in pod.container.get("envFrom") or []
    ) or all(pod.sources.get(k) == "secret" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    if not from_secret:
        errors.append(f"{where}: AWS credentials must come from a Secret (envFrom or secretKeyRef)")
    cache = env.get("TUNESERVE_CACHE_DIR")
    volume = _mount(cache, pod.container, volumes) if cache else None
    if not volume or "emptyDir" not in volume:
        errors.append(f"{where}: TUNESERVE_CACHE_DIR ({cache}) must be an emptyDir mount")
        return errors
    size = (volume["emptyDir"] or {}).get("sizeLimit")
    max_bytes = str(env.get("TUNESERVE_CACHE_MAX_BYTES"))
    limit = quantity(size)
    if not limit or not max_bytes.isdigit() or limit < CACHE_HEADROOM * int(max_bytes):
        errors.append(
            f"{where}: the cache emptyDir needs a sizeLimit ({size}) of at least {CACHE_HEADROOM} x "
            f"TUNESERVE_CACHE_MAX_BYTES ({max_bytes})"
        )
    return errors


def check_storage(docs: list[dict]) -> list[str]:
    """Where the model store, the job store and the cache live, and where credentials come from."""
    errors = []
    claims = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "PersistentVolumeClaim"}
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and (leaked := sorted(AWS_SECRETS & set(doc.get("data") or {}))):
            errors.append(f"ConfigMap {doc['metadata']['name']}: {leaked} belong in a Secret")
    pods = []
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        label = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
        component = (doc.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component")
        volumes = {v.get("name"): v for v in _pod_spec(doc).get("volumes") or []}
        for container in _pod_spec(doc).get("containers") or []:
            env, sources = effective_env(container, docs)
            pod = Pod(
                f"{label} container {container.get('name')}", component, container, env, sources, volumes
            )
            # A value in env hides the envFrom ConfigMap's (the base's /models would hide the bucket).
            listed = {e.get("name") for e in container.get("env") or []}
            if hidden := sorted(listed & set(_from_config_maps(container, docs))):
                errors.append(f"{pod.where}: env {hidden} hides the value of its envFrom ConfigMap")
            if literal := sorted(k for k in AWS_SECRETS & set(env) if sources[k] != "secret"):
                errors.append(f"{pod.where}: {literal} must come from a Secret, not a literal or a ConfigMap")
            if str(container.get("image", "")).partition(":")[0] == IMAGE:
                pods.append(pod)
    roots = {p.where: p.env.get("TUNESERVE_MODEL_ROOT") or IMAGE_MODEL_ROOT for p in pods}
    if any(str(r).startswith("s3://") for r in roots.values()):
        if len(set(roots.values())) != 1:
            errors.append(f"the serving pods and the trainer must share one s3:// model root, not {roots}")
        for name, claim in claims.items():
            if "ReadWriteMany" in ((claim.get("spec") or {}).get("accessModes") or []):
                errors.append(f"PersistentVolumeClaim {name}: ReadWriteMany with the model store in a bucket")
        for pod in pods:
            errors += _check_object_store_pod(pod, claims)
        return errors
    # A local model store: one claim that every pod mounts.
    shared = set()
    for pod in pods:
        volume = _mount(roots[pod.where], pod.container, pod.volumes)
        if not volume or "persistentVolumeClaim" not in volume:
            errors.append(f"{pod.where}: the model root {roots[pod.where]} is on no PersistentVolumeClaim")
        else:
            shared.add(volume["persistentVolumeClaim"].get("claimName"))
    if len(shared) > 1:
        errors.append(f"the serving pods and the trainer must share one model store, not {sorted(shared)}")
    return errors


def _rules(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role.get("rules") or []
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def _bound_roles(account: str, docs: list[dict]) -> list[dict]:
    """The Roles (and ClusterRoles) that RoleBindings of this namespace give ServiceAccount ``account``."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d.get("kind") in ("Role", "ClusterRole")}
    bound = []
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in subjects):
            ref = binding.get("roleRef") or {}
            bound.append(roles.get((ref.get("kind"), ref.get("name")), {"missing": ref.get("name")}))
    return bound


def kubernetes_settings(env: dict[str, str | None]) -> object:
    """The Kubernetes executor's settings, read from a container's ``TUNESERVE_TRAINING__KUBERNETES__*``."""
    from tuneserve.server.settings import KubernetesSettings

    prefix = "TUNESERVE_TRAINING__KUBERNETES__"
    values: dict[str, object] = {}
    for key, value in env.items():
        if key.startswith(prefix) and value is not None:
            field = key[len(prefix) :].lower()
            values[field] = json.loads(value) if value[:1] in "[{" else value
    return KubernetesSettings.model_validate(values)


def rendered_jobs(env: dict[str, str | None], image: str) -> list[dict]:
    """What the executor renders from a trainer's settings (``image``: its own, which Jobs run by default):
    a one-node Job, and a two-node Indexed Job with its headless Service."""
    from tuneserve.pipeline import staged
    from tuneserve.repository import StoreConfig
    from tuneserve.server import kubejobs

    settings = kubernetes_settings(env)
    if not settings.image:  # type: ignore[attr-defined]
        settings = settings.model_copy(update={"image": image})  # type: ignore[attr-defined]
    store = StoreConfig(root=env.get("TUNESERVE_MODEL_ROOT") or IMAGE_MODEL_ROOT)
    docs = []
    for nnodes in (1, 2):
        job_id = f"example{nnodes:09d}"
        spec = {"nnodes": nnodes, "gpus_per_node": settings.gpus, "threads": 4, "nproc_per_node": 1}  # type: ignore[attr-defined]
        docs.append(
            kubejobs.render_job(
                job_id=job_id,
                model="example",
                spec=spec,
                settings=settings,  # type: ignore[arg-type]
                store=store,
                staged=staged.location(store.root, job_id),
                env={"AWS_REGION": "us-east-1"},
            )
        )
        if nnodes > 1:
            docs.append(kubejobs.render_service(job_id, settings))  # type: ignore[arg-type]
    return docs


def check_training_jobs(docs: list[dict]) -> tuple[list[str], list[dict]]:
    """The Kubernetes executor's identities and rights, and the objects it would render (to validate)."""
    from tuneserve.server.kubejobs import RBAC_RULES

    errors: list[str] = []
    rendered: list[dict] = []
    accounts = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ServiceAccount"}
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        label = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
        pod = _pod_spec(doc)
        account = pod.get("serviceAccountName") or "default"
        mounts_token = pod.get("automountServiceAccountToken")
        if mounts_token is None:
            mounts_token = (accounts.get(account) or {}).get("automountServiceAccountToken", True)
        executor, image = None, ""
        for container in pod.get("containers") or []:
            env, _ = effective_env(container, docs)
            if env.get("TUNESERVE_TRAINING__EXECUTOR") == "kubernetes":
                executor, image = env, str(container.get("image", ""))
                limits = (container.get("resources") or {}).get("limits") or {}
                if "nvidia.com/gpu" in limits:
                    errors.append(f"{label}: runs its jobs as Kubernetes Jobs, yet holds a GPU itself")
        if executor is None:
            if mounts_token:
                errors.append(
                    f"{label}: mounts an API token it has no use for (automountServiceAccountToken)"
                )
            continue
        if account not in accounts:
            errors.append(f"{label}: ServiceAccount {account} is not among the objects")
        if not mounts_token:
            errors.append(f"{label}: runs Kubernetes Jobs but mounts no API token")
        granted = (
            set().union(*(_rules(r) for r in _bound_roles(account, docs))) if account in accounts else set()
        )
        wanted = {(g, r, v) for g, r, verbs in RBAC_RULES for v in verbs}
        if missing := sorted(wanted - granted):
            errors.append(f"{label}: ServiceAccount {account} lacks {missing}")
        if extra := sorted(granted - wanted):
            errors.append(f"{label}: ServiceAccount {account} may do more than the executor needs: {extra}")
        job_account = executor.get("TUNESERVE_TRAINING__KUBERNETES__SERVICE_ACCOUNT") or "default"
        if job_account != "default" and job_account not in accounts:
            errors.append(f"{label}: the Jobs' ServiceAccount {job_account} is not among the objects")
        elif _bound_roles(job_account, docs):
            errors.append(
                f"{label}: the Jobs' ServiceAccount {job_account} is bound to a Role; Jobs need none"
            )
        try:
            rendered += rendered_jobs(executor, image)
        except Exception as exc:  # the trainer would refuse these settings at start-up
            errors.append(f"{label}: its TUNESERVE_TRAINING__KUBERNETES__* settings are refused: {exc}")
    return errors, rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", action="append", default=None)
    parser.add_argument("files", nargs="*", type=argparse.FileType("r"), default=[sys.stdin])
    args = parser.parse_args()
    versions = args.kubernetes_version or ["1.31.0", kubernetes_validate.latest_version()]
    docs = [d for f in args.files for d in yaml.safe_load_all(f) if d]
    services = [d for d in docs if d.get("kind") == "Service"]
    errors, rendered = check_training_jobs(docs)
    for doc in docs + rendered:
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
    errors += check_storage(docs)
    for e in errors:
        print(e, file=sys.stderr)
    jobs = f" (and {len(rendered)} rendered by the training executor)" if rendered else ""
    print(f"{len(docs)} objects{jobs}, Kubernetes {', '.join(versions)}: {'FAILED' if errors else 'valid'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
