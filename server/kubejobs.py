"""The Kubernetes objects of a training job, rendered as dicts (no API calls): a ``batch/v1`` Job, and for
a multi-node job an Indexed Job plus a headless Service.

The Job's one container runs the job worker on the inputs staged beside the model store
(``python -m tuneserve.pipeline.job --staged LOCATION --events -``), with ``backoffLimit: 0`` (a failed
job is not retried: its error is the user's answer), ``restartPolicy: Never``, a scratch ``emptyDir``,
and the model store's volume (a local model root: ``models_claim``, mounted at the root's own path).

A job over ``nnodes`` > 1 nodes is an Indexed Job (``completions = parallelism = nnodes``) whose pods are
``<job>-<index>.<service>`` through a headless Service (``clusterIP: None``, pod ``subdomain``); each runs
torchrun with ``--nnodes``, ``--node-rank $JOB_COMPLETION_INDEX`` and a static rendezvous at
``<job>-0.<service>:29500``. Index 0 exports, gates and publishes; the others only train.

``python -m tuneserve.server.kubejobs --example [--nnodes N]`` prints an example as the executor renders
it (YAML), for manifest checks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from tuneserve import objects
from tuneserve.repository import StoreConfig
from tuneserve.server.settings import KubernetesSettings

NAME_PREFIX = "tuneserve-train-"
JOB_ID_LABEL = "tuneserve.dev/job-id"
MODEL_ANNOTATION = "tuneserve.dev/model"
CONTAINER = "train"
RDZV_PORT = 29500
SCRATCH = "/scratch"
LABELS = {"app.kubernetes.io/name": "tuneserve", "app.kubernetes.io/component": "training-job"}
# Variables of --training-kubernetes-env that are secrets: with env_secret they come from that Secret.
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The API rights the executor uses in the Jobs' namespace, (API group, resource, verbs): what the Role in
# deploy/kubernetes/base/rbac.yaml grants (deploy/kubernetes/validate.py checks it is exactly this). pods get
# also reads the trainer's own pod, for the image its Jobs run.
RBAC_RULES = (
    ("batch", "jobs", ("create", "get", "list", "watch", "delete")),
    ("", "pods", ("get", "list", "watch")),
    ("", "pods/log", ("get",)),
    ("", "services", ("create", "delete")),
)


def job_name(job_id: str) -> str:
    """The Kubernetes name of a job's Job (and Service)."""
    return NAME_PREFIX + job_id


def labels(job_id: str) -> dict[str, str]:
    return {**LABELS, JOB_ID_LABEL: job_id}


def render_job(
    *,
    job_id: str,
    model: str,
    spec: Mapping[str, Any],
    settings: KubernetesSettings,
    store: StoreConfig,
    staged: str,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """The Job of ``job_id``: ``spec`` is its ``JobSpec`` (as JSON), ``staged`` where its inputs are, and
    ``env`` the variables of the server passed through (``settings.env``; read from ``env_secret`` instead
    when one is named)."""
    name = job_name(job_id)
    nnodes = int(spec.get("nnodes", 1))
    gpus = int(spec.get("gpus_per_node", 0))
    threads = int(spec.get("threads", 1))
    args = ["--staged", staged, "--events", "-"]
    if nnodes > 1:
        args += ["--rdzv-endpoint", f"{name}-0.{name}:{RDZV_PORT}"]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "tuneserve.pipeline.job"],
        "args": args,
        "env": [
            {"name": "TUNESERVE_JOB_SCRATCH", "value": SCRATCH},
            # The root filesystem is read-only: library caches (torch, transformers) go to the scratch folder.
            {"name": "HOME", "value": SCRATCH},
            {"name": "OMP_NUM_THREADS", "value": str(threads)},
            {"name": "MKL_NUM_THREADS", "value": str(threads)},
            {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
            *_passed_env(settings, env),
        ],
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = _resources(settings, gpus)
    if resources:
        container["resources"] = resources
    if nnodes > 1:
        container["ports"] = [{"name": "rdzv", "containerPort": RDZV_PORT}]
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    if not objects.is_s3(store.root) and settings.models_claim:
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": settings.models_claim}})
        container["volumeMounts"].append({"name": "models", "mountPath": store.root})
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # A training job needs no API token; it runs as the images' non-root user (Dockerfile).
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 0,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod["tolerations"] = [dict(t) for t in settings.tolerations]
    if nnodes > 1:
        pod["subdomain"] = name
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": nnodes,
        "parallelism": nnodes,
        "template": {"metadata": {"labels": labels(job_id)}, "spec": pod},
    }
    if nnodes > 1:
        job_spec["completionMode"] = "Indexed"
    if settings.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    if settings.active_deadline_s is not None:
        job_spec["activeDeadlineSeconds"] = settings.active_deadline_s
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.resolved_namespace,
            "labels": labels(job_id),
            "annotations": {MODEL_ANNOTATION: model},
        },
        "spec": job_spec,
    }


def render_service(job_id: str, settings: KubernetesSettings) -> dict[str, Any]:
    """The headless Service that names the pods of a multi-node job (``<job>-<index>.<job>``)."""
    name = job_name(job_id)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.resolved_namespace, "labels": labels(job_id)},
        "spec": {
            "clusterIP": "None",
            "selector": {"batch.kubernetes.io/job-name": name},
            "ports": [{"name": "rdzv", "port": RDZV_PORT, "targetPort": RDZV_PORT}],
            "publishNotReadyAddresses": True,
        },
    }


def _resources(settings: KubernetesSettings, gpus: int) -> dict[str, dict[str, str]]:
    requests = {k: v for k, v in (("cpu", settings.cpu_request), ("memory", settings.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", settings.cpu_limit), ("memory", settings.memory_limit)) if v}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _passed_env(settings: KubernetesSettings, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The server's ``settings.env`` variables for the Job: credentials from ``env_secret`` when one is
    named (never written into the Job), the others as the server's values."""
    passed: list[dict[str, Any]] = []
    for var in settings.env:
        if settings.env_secret and var in SECRET_ENV:
            ref = {"name": settings.env_secret, "key": var, "optional": True}
            passed.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
        elif env.get(var):
            passed.append({"name": var, "value": env[var]})
    return passed


def example(nnodes: int = 1) -> list[dict[str, Any]]:
    """The objects of an example job, as the executor renders them (an s3:// store, a GPU pool)."""
    settings = KubernetesSettings(
        namespace="tuneserve",
        image="tuneserve-train",
        service_account="tuneserve-training-job",
        cpu_request="2",
        memory_request="4Gi",
        memory_limit="8Gi",
        gpus=1,
        node_selector={"tuneserve.dev/pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        env_secret="tuneserve-s3",
        active_deadline_s=86400,
    )
    store = StoreConfig(root="s3://models/tuneserve")
    job_id = "0123456789abcdef"
    spec = {"nnodes": nnodes, "gpus_per_node": 1, "threads": 4, "nproc_per_node": 1}
    from tuneserve.pipeline import staged

    where = staged.location(store.root, job_id)
    job = render_job(
        job_id=job_id, model="sentiment", spec=spec, settings=settings, store=store, staged=where, env={}
    )
    return [job, render_service(job_id, settings)] if nnodes > 1 else [job]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tuneserve.server.kubejobs",
        description="Print the Kubernetes objects of an example training job, as the executor renders them.",
    )
    parser.add_argument("--example", action="store_true", required=True)
    parser.add_argument("--nnodes", type=int, default=1, help="nodes of the example job (> 1: Indexed Job)")
    args = parser.parse_args(argv)
    import yaml

    sys.stdout.write(yaml.safe_dump_all(example(max(1, args.nnodes)), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
