"""The Kubernetes executor end to end: a live ``tuneserve serve --training-executor kubernetes`` against a
real API server (etcd + kube-apiserver, tests/kubeapi.py) with the test kubelet (tests/kubelet.py) running
each Job's container as a local process. The server runs as the trainer's ServiceAccount, with a Role of
exactly the verbs the executor needs: deploy/kubernetes/base/rbac.yaml, applied as it is."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubeapi import NAMESPACE, TRAINER_SERVICE_ACCOUNT, KubeAPIServer, service_account_user
from kubelet import TestKubelet
from tuneserve.v1 import inference_pb2, training_pb2

from .live import ServerProcess, start_failure
from .training import classification_request, wait_job, wait_until

pytestmark = pytest.mark.timeout(900)

SUCCEEDED, FAILED, CANCELLED = (
    training_pb2.JOB_STATE_SUCCEEDED,
    training_pb2.JOB_STATE_FAILED,
    training_pb2.JOB_STATE_CANCELLED,
)
# The Jobs' and the trainer's ServiceAccounts and its Role: deploy/kubernetes/base/rbac.yaml, as is.
JOB_SERVICE_ACCOUNT = "tuneserve"
RBAC_MANIFEST = Path(__file__).parents[2] / "deploy" / "kubernetes" / "base" / "rbac.yaml"
# The trainer's own pod, whose image the Jobs run when no --training-kubernetes-image is set.
TRAINER_POD, TRAINER_IMAGE = "tuneserve-trainer-0", "tuneserve:train-under-test"
TOLERATION = {"key": "tuneserve.dev/training", "operator": "Exists", "effect": "NoSchedule"}


class _ByModel(dict):  # type: ignore[type-arg]
    """``TestKubelet.simulate``, keyed by the model a Job trains (its annotation) instead of the Job's name,
    which the server picks."""

    def __init__(self, batch: Any) -> None:
        super().__init__()
        self.batch = batch
        self.models: dict[str, str] = {}

    def get(self, name: str, default: Any = None) -> Any:
        job = self.batch.read_namespaced_job(name, NAMESPACE)
        return self.models.get((job.metadata.annotations or {}).get("tuneserve.dev/model", ""), default)


@pytest.fixture(scope="module")
def cluster(kube_api: KubeAPIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from kubernetes import client

    admin = kube_api.client()
    core, batch, rbac = (
        client.CoreV1Api(admin),
        client.BatchV1Api(admin),
        client.RbacAuthorizationV1Api(admin),
    )
    import yaml

    create = {
        "ServiceAccount": core.create_namespaced_service_account,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    for doc in yaml.safe_load_all(RBAC_MANIFEST.read_text()):
        create[doc["kind"]](NAMESPACE, doc)
    # The trainer's pod, as its Deployment would have made it (never bound: the kubelet runs Jobs only).
    container = {"name": "tuneserve", "image": TRAINER_IMAGE}
    core.create_namespaced_pod(
        NAMESPACE, {"metadata": {"name": TRAINER_POD}, "spec": {"containers": [container]}}
    )
    root = tmp_path_factory.mktemp("kubelet")
    node = TestKubelet(admin, NAMESPACE, root)
    simulate = _ByModel(batch)
    node.simulate = simulate
    node.start()
    user, _ = service_account_user(NAMESPACE, TRAINER_SERVICE_ACCOUNT)
    yield {
        "core": core,
        "batch": batch,
        "kubelet": node,
        "simulate": simulate.models,
        "kubeconfig": kube_api.kubeconfig(user),
    }
    node.stop()
    assert node.errors == []


def _start(root: Path | str, kubeconfig: Path, *flags: str) -> ServerProcess:
    return ServerProcess(
        root,  # type: ignore[arg-type]
        *flags,
        "--training-executor",
        "kubernetes",
        "--training-kubernetes-namespace",
        NAMESPACE,
        "--training-kubernetes-models-claim",
        "tuneserve-models",
        "--training-kubernetes-service-account",
        JOB_SERVICE_ACCOUNT,
        "--training-kubernetes-cpu-request",
        "250m",
        "--training-kubernetes-memory-limit",
        "3Gi",
        "--training-kubernetes-node-selector",
        '{"tuneserve.dev/pool": "training"}',
        "--training-kubernetes-tolerations",
        f'[{{"key": "{TOLERATION["key"]}", "operator": "Exists", "effect": "NoSchedule"}}]',
        "--training-kubernetes-ttl-seconds-after-finished",
        "600",
        "--training-kubernetes-unschedulable-timeout",
        "2",
        "--training-threads",
        "1",
        "--max-running-jobs",
        "4",
        env={"KUBECONFIG": str(kubeconfig), "HOSTNAME": TRAINER_POD},
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(models: Path, cluster: dict[str, Any]) -> Iterator[ServerProcess]:
    live = _start(models, cluster["kubeconfig"])
    yield live
    live.stop()


def _job_of(cluster: dict[str, Any], job_id: str) -> Any:
    from kubernetes import client

    try:
        return cluster["batch"].read_namespaced_job(f"tuneserve-train-{job_id}", NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _created_job(cluster: dict[str, Any], job_id: str) -> Any:
    """The Job of ``job_id``, once the server has created it (it is read while it runs)."""
    deadline = time.monotonic() + 60
    while (kube_job := _job_of(cluster, job_id)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kube_job is not None, "no Job was created"
    return kube_job


def _watch(server: ServerProcess, job_id: str, out: list) -> None:
    for response in server.training.WatchTrainingJob(training_pb2.WatchTrainingJobRequest(job_id=job_id)):
        out.append(response.event)


def test_without_a_kubernetes_configuration_the_server_does_not_start(tmp_path: Path) -> None:
    stderr = start_failure(
        tmp_path / "models",
        "--training-executor",
        "kubernetes",
        "--training-kubernetes-models-claim",
        "tuneserve-models",
        env={"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)},
    )
    assert "--training-executor kubernetes needs the Kubernetes API" in stderr and "kubeconfig" in stderr


def test_a_local_model_root_needs_the_claim_jobs_mount_it_from(
    tmp_path: Path, cluster: dict[str, Any]
) -> None:
    stderr = start_failure(
        tmp_path / "models",
        "--training-executor",
        "kubernetes",
        env={"KUBECONFIG": str(cluster["kubeconfig"])},
    )
    assert "--training-kubernetes-models-claim" in stderr


def test_a_job_runs_as_a_kubernetes_job_and_is_promoted(
    server: ServerProcess, cluster: dict[str, Any], models: Path, tiny_base: Path
) -> None:
    job = server.training.Train(classification_request("reviews", tiny_base, epochs=2)).job
    events: list = []
    watcher = threading.Thread(target=_watch, args=(server, job.id, events))
    watcher.start()
    kube_job = _created_job(cluster, job.id)
    done = wait_job(server, job.id)
    watcher.join(30)
    assert done.state == SUCCEEDED, done.error
    assert done.version == 1 and done.promoted, done.promotion_reason
    reply = server.inference.Classify(inference_pb2.ClassifyRequest(model="reviews", texts=["great"]))
    assert reply.version == 1

    # Progress came through the pod's log as the same events a local job gives.
    assert events[-1].state == SUCCEEDED
    stages = [e.stage for e in events]
    for stage in ("TRAINING", "EXPORTING", "GATING", "PROMOTING"):
        assert training_pb2.TrainingStage.Value(f"TRAINING_STAGE_{stage}") in stages
    assert any(e.progress.step > 0 for e in events) and any(e.metrics for e in events)

    # The Job carries the settings.
    spec = kube_job.spec
    pod = spec.template.spec
    container = pod.containers[0]
    assert spec.backoff_limit == 0 and spec.ttl_seconds_after_finished == 600
    assert kube_job.metadata.labels == {
        "app.kubernetes.io/name": "tuneserve",
        "app.kubernetes.io/component": "training-job",
        "tuneserve.dev/job-id": job.id,
    }
    assert pod.service_account_name == JOB_SERVICE_ACCOUNT and pod.restart_policy == "Never"
    assert pod.node_selector == {"tuneserve.dev/pool": "training"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [
        (TOLERATION["key"], "Exists", "NoSchedule")
    ]
    assert container.image == TRAINER_IMAGE, "the Jobs run the trainer's own image"
    assert container.resources.requests == {"cpu": "250m"} and container.resources.limits == {"memory": "3Gi"}
    assert container.args[:2] == ["--staged", str(models / ".jobs" / job.id)]
    # The staged inputs are gone once the job ended.
    assert not (models / ".jobs" / job.id).exists()


def test_cancel_deletes_the_job_and_keeps_the_serving_model(
    server: ServerProcess, cluster: dict[str, Any], tiny_base: Path
) -> None:
    before = server.models.GetModel(_get_model("reviews")).model.serving_version
    job = server.training.Train(classification_request("reviews", tiny_base, epochs=60)).job
    wait_until(server, job.id, lambda j: j.progress.step > 0)
    server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
    done = wait_job(server, job.id)
    assert done.state == CANCELLED, done.error
    assert _job_of(cluster, job.id) is None, "the Job is deleted"
    assert cluster["kubelet"].running_processes() == []
    assert server.models.GetModel(_get_model("reviews")).model.serving_version == before


@pytest.mark.parametrize("reason", ["OOMKilled", "ImagePullBackOff", "Unschedulable"])
def test_a_pod_failure_fails_the_job_with_its_reason(
    server: ServerProcess, cluster: dict[str, Any], tiny_base: Path, reason: str
) -> None:
    model = f"fails-{reason.lower()}"
    cluster["simulate"][model] = reason
    job = server.training.Train(classification_request(model, tiny_base, epochs=60)).job
    done = wait_job(server, job.id, timeout=120)
    assert done.state == FAILED
    assert reason in done.error, done.error
    deadline = time.monotonic() + 30
    while _job_of(cluster, job.id) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _job_of(cluster, job.id) is None, "a failed job's Job is deleted"


def test_nodes_and_gpus_beyond_the_settings_are_invalid(server: ServerProcess, tiny_base: Path) -> None:
    for fields, says in (({"nnodes": 2}, "at most 1 nodes"), ({"gpus_per_node": 1}, "at most 0 per node")):
        with pytest.raises(grpc.RpcError) as caught:
            server.training.Train(classification_request("bounded", tiny_base, **fields))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert says in caught.value.details()


def test_a_job_whose_job_someone_else_deletes_fails_saying_so(
    server: ServerProcess, cluster: dict[str, Any], tiny_base: Path
) -> None:
    job = server.training.Train(classification_request("deleted", tiny_base, epochs=60)).job
    wait_until(server, job.id, lambda j: j.progress.step > 0)
    cluster["batch"].delete_namespaced_job(
        f"tuneserve-train-{job.id}", NAMESPACE, propagation_policy="Foreground"
    )
    done = wait_job(server, job.id)
    assert done.state == FAILED
    assert "was deleted while the job ran (not by CancelTrainingJob)" in done.error, done.error


def test_with_an_object_store_the_inputs_are_staged_in_the_bucket(
    s3_store: Any, cluster: dict[str, Any], tiny_base: Path, tmp_path: Path
) -> None:
    flags = ("--jobs-dir", str(tmp_path / "jobs"), "--cache-dir", str(tmp_path / "cache"))
    live = _start(s3_store.uri, cluster["kubeconfig"], *flags)
    try:
        job = live.training.Train(classification_request("in-bucket", tiny_base, epochs=1)).job
        kube_job = _created_job(cluster, job.id)
        done = wait_job(live, job.id)
        assert done.state == SUCCEEDED, done.error
        assert done.version == 1 and done.promoted
    finally:
        live.stop()
    container = kube_job.spec.template.spec.containers[0]
    assert container.args[:2] == ["--staged", f"{s3_store.uri}/.jobs/{job.id}"]
    env = {e.name: e.value for e in container.env}
    assert env["AWS_ENDPOINT_URL"] == s3_store.env["AWS_ENDPOINT_URL"]  # passed on from the server
    listed = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix="models/.jobs/")
    assert listed.get("KeyCount", 0) == 0, "the staged inputs are deleted when the job ends"
    keys = [o["Key"] for o in s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert any("in-bucket" in k and k.endswith("manifest.json") for k in keys), "published into the bucket"


def test_a_restarted_server_follows_its_running_job_again(
    models: Path, cluster: dict[str, Any], tiny_base: Path, server: ServerProcess
) -> None:
    server.stop()  # the module's server; this test runs its own two
    first = _start(models, cluster["kubeconfig"])
    try:
        job = first.training.Train(classification_request("restarted", tiny_base, epochs=3)).job
        wait_until(first, job.id, lambda j: j.progress.step > 0)
    finally:
        first.stop(signal.SIGKILL)
    assert _job_of(cluster, job.id) is not None and cluster["kubelet"].running_processes()
    second = _start(models, cluster["kubeconfig"])
    try:
        done = wait_job(second, job.id)
        assert done.state == SUCCEEDED, done.error
        assert done.version == 1 and done.promoted
        assert any(e.get("event") == "job followed again" for e in second.events)
    finally:
        second.stop()


def _get_model(name: str) -> Any:
    from tuneserve.v1 import model_pb2

    return model_pb2.GetModelRequest(name=name)
