"""The Kubernetes executor's pieces without a cluster: the rendered Job and Service, the settings and flags
that shape them, and the bounds on what a Train request may ask for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuneserve.repository import StoreConfig
from tuneserve.server import kubejobs, trainrequest
from tuneserve.server.cli import build_settings
from tuneserve.server.errors import InvalidInput
from tuneserve.server.settings import KubernetesSettings, Settings
from tuneserve.trainer.launch import Launch
from tuneserve.v1 import training_pb2

SPEC = {"nnodes": 1, "gpus_per_node": 0, "threads": 2, "nproc_per_node": 1}


def _render(settings: KubernetesSettings, store: str = "s3://models/p", **spec: object) -> dict:
    return kubejobs.render_job(
        job_id="abc",
        model="m",
        spec={**SPEC, **spec},
        settings=settings,
        store=StoreConfig(root=store),
        staged=f"{store}/.jobs/abc",
        env={"AWS_ACCESS_KEY_ID": "key", "UNRELATED": "x"},
    )


def test_a_multi_node_job_is_an_indexed_job_with_a_headless_service() -> None:
    settings = KubernetesSettings(namespace="ns", gpus=1)
    job = _render(settings, nnodes=3, gpus_per_node=2)
    service = kubejobs.render_service("abc", settings)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == job["metadata"]["name"] == "tuneserve-train-abc"
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "tuneserve.pipeline.job"]
    assert container["args"] == [
        "--staged",
        "s3://models/p/.jobs/abc",
        "--events",
        "-",
        "--rdzv-endpoint",
        "tuneserve-train-abc-0.tuneserve-train-abc:29500",
    ]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}  # the request's, over the setting
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "tuneserve-train-abc"}
    # What each pod hands torchrun: node rank from JOB_COMPLETION_INDEX, static rendezvous at index 0.
    how = Launch(nproc_per_node=2, nnodes=3, node_rank=1, rdzv_endpoint=container["args"][-1])
    args = how.torchrun_args(Path("/tmp/x"))
    assert args[args.index("--nnodes") + 1] == "3" and args[args.index("--node-rank") + 1] == "1"
    assert args[args.index("--rdzv-endpoint") + 1] == "tuneserve-train-abc-0.tuneserve-train-abc:29500"


def test_a_single_node_job_is_a_plain_job_with_the_settings() -> None:
    settings = KubernetesSettings(
        namespace="ns",
        image="img:1",
        image_pull_policy="Always",
        service_account="sa",
        cpu_request="1",
        memory_request="2Gi",
        cpu_limit="2",
        memory_limit="4Gi",
        node_selector={"pool": "train"},
        tolerations=[{"key": "k", "operator": "Exists"}],
        ttl_seconds_after_finished=60,
        active_deadline_s=3600,
    )
    job = _render(settings)
    assert "completionMode" not in job["spec"] and job["spec"]["completions"] == 1
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/name": "tuneserve",
        "app.kubernetes.io/component": "training-job",
        "tuneserve.dev/job-id": "abc",
    }
    assert job["spec"]["ttlSecondsAfterFinished"] == 60 and job["spec"]["activeDeadlineSeconds"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "sa" and pod["nodeSelector"] == {"pool": "train"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}] and "subdomain" not in pod
    container = pod["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == ("img:1", "Always")
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "AWS_ACCESS_KEY_ID", "value": "key"}
    assert "UNRELATED" not in env and "AWS_SECRET_ACCESS_KEY" not in env  # only the listed, set ones


def test_credentials_come_from_a_secret_when_one_is_named() -> None:
    job = _render(KubernetesSettings(namespace="ns", env_secret="s3-creds", env=["AWS_ACCESS_KEY_ID"]))
    env = [e for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"].startswith("AWS")]
    assert env == [
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID", "optional": True}},
        }
    ]


def test_a_local_model_root_is_mounted_from_its_claim_at_its_own_path() -> None:
    job = _render(KubernetesSettings(namespace="ns", models_claim="models"), store="/srv/models")
    pod = job["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models"}} in pod["volumes"]
    assert {"name": "models", "mountPath": "/srv/models"} in pod["containers"][0]["volumeMounts"]


def test_the_example_prints_valid_yaml_of_a_job_and_a_service() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tuneserve.server.kubejobs", "--example", "--nnodes", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["Job", "Service"]


def test_the_executor_settings_come_from_flags_and_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESERVE_TRAINING__EXECUTOR", "kubernetes")
    monkeypatch.setenv("TUNESERVE_TRAINING__KUBERNETES__NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("TUNESERVE_TRAINING__KUBERNETES__IMAGE", "from-env")
    settings = build_settings({"training__kubernetes__image": "from-flag", "training__kubernetes__gpus": 2})
    kube = settings.training.kubernetes
    assert settings.training.executor == "kubernetes"
    assert (kube.image, kube.gpus, kube.node_selector) == ("from-flag", 2, {"pool": "gpu"})
    assert Settings().training.executor == "kubernetes"
    monkeypatch.delenv("TUNESERVE_TRAINING__EXECUTOR")
    assert Settings().training.executor == "local"


@pytest.mark.parametrize(
    ("executor", "fields", "error"),
    [
        ("local", {"nnodes": 2}, "--training-executor local"),
        ("local", {"gpus_per_node": 1}, "only for --training-executor kubernetes"),
        ("kubernetes", {"nnodes": 3}, "at most 2 nodes"),
        ("kubernetes", {"gpus_per_node": 5}, "at most 4 per node"),
        ("kubernetes", {"nnodes": -1}, "nnodes is -1"),
    ],
)
def test_a_request_asks_for_nodes_and_gpus_within_the_settings(
    executor: str, fields: dict, error: str
) -> None:
    settings = Settings.load(
        training={"executor": executor, "kubernetes": {"max_nnodes": 2, "max_gpus_per_node": 4, "gpus": 1}}
    )
    with pytest.raises(InvalidInput, match=error):
        trainrequest._placement(training_pb2.TrainRequest(**fields), settings)


def test_a_request_gets_the_setting_s_gpus_unless_it_asks() -> None:
    settings = Settings.load(
        training={
            "executor": "kubernetes",
            "kubernetes": {"max_nnodes": 2, "max_gpus_per_node": 4, "gpus": 1},
        }
    )
    assert trainrequest._placement(training_pb2.TrainRequest(), settings) == (1, 1)
    assert trainrequest._placement(training_pb2.TrainRequest(nnodes=2, gpus_per_node=4), settings) == (2, 4)
