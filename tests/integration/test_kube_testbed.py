"""The Kubernetes testbed itself (tests/kubeapi.py, tests/kubelet.py): a real API server, and a test kubelet
that runs a Job's container as a local process, streams its log through the API server, and plays the
garbage collector for a foreground deletion. The executor tests rely on each of these."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeapi import NAMESPACE, TRAINER_SERVICE_ACCOUNT, KubeAPIServer, service_account_user
from kubelet import TestKubelet

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def kubelet(kube_api: KubeAPIServer, tmp_path: Path) -> Iterator[TestKubelet]:
    node = TestKubelet(kube_api.client(), NAMESPACE, tmp_path / "kubelet")
    node.start()
    yield node
    node.stop()
    assert node.errors == [], "\n".join(node.errors)


def _job(name: str, code: str, **spec: object) -> dict:
    container = {"name": "main", "image": "example.invalid/x", "command": ["python", "-c", code]}
    container["env"] = [{"name": "GREETING", "value": "hello"}]
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": template, **spec}}


def _wait(what, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_job_runs_and_its_log_streams_through_the_api_server(kube_api: KubeAPIServer, kubelet: TestKubelet):
    from kubernetes import client

    core, batch = client.CoreV1Api(kube_api.client()), client.BatchV1Api(kube_api.client())
    name = f"ok-{uuid.uuid4().hex[:6]}"
    code = "import os, time; print(os.environ['GREETING'], flush=True); time.sleep(0.5); print('done')"
    batch.create_namespaced_job(NAMESPACE, _job(name, code))

    def running() -> str | None:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
        return pods[0].metadata.name if pods and pods[0].status.phase != "Pending" else None

    pod = _wait(running)
    lines = b"".join(
        core.read_namespaced_pod_log(pod, NAMESPACE, follow=True, _preload_content=False).stream()
    )
    assert lines.split() == [b"hello", b"done"]
    job = _wait(lambda: (j := batch.read_namespaced_job(name, NAMESPACE)).status.succeeded and j)
    assert {c.type for c in job.status.conditions} >= {"Complete"}
    terminated = core.read_namespaced_pod(pod, NAMESPACE).status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")


def test_foreground_deletion_stops_the_process_and_removes_the_job(
    kube_api: KubeAPIServer, kubelet: TestKubelet
):
    from kubernetes import client

    batch = client.BatchV1Api(kube_api.client())
    name = f"slow-{uuid.uuid4().hex[:6]}"
    batch.create_namespaced_job(NAMESPACE, _job(name, "import time; time.sleep(600)"))
    _wait(kubelet.running_processes)
    batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Foreground")

    def gone() -> bool:
        try:
            batch.read_namespaced_job(name, NAMESPACE)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    _wait(gone)
    assert kubelet.running_processes() == []


@pytest.mark.parametrize("reason", ["OOMKilled", "ImagePullBackOff", "Unschedulable"])
def test_simulated_failures_look_as_on_a_cluster(kube_api: KubeAPIServer, kubelet: TestKubelet, reason: str):
    from kubernetes import client

    core = client.CoreV1Api(kube_api.client())
    name = f"{reason.lower()}-{uuid.uuid4().hex[:6]}"
    kubelet.simulate[name] = reason
    client.BatchV1Api(kube_api.client()).create_namespaced_job(
        NAMESPACE, _job(name, "import time; time.sleep(600)")
    )

    def status():  # type: ignore[no-untyped-def]
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
        return (
            pods[0].status
            if pods and (pods[0].status.container_statuses or pods[0].status.conditions)
            else None
        )

    if reason == "OOMKilled":
        terminated = _wait(
            lambda: (s := status()) and s.container_statuses and s.container_statuses[0].state.terminated
        )
        assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    elif reason == "ImagePullBackOff":
        waiting = _wait(
            lambda: (s := status()) and s.container_statuses and s.container_statuses[0].state.waiting
        )
        assert waiting.reason == "ImagePullBackOff"
    else:
        condition = _wait(lambda: (s := status()) and s.conditions and s.conditions[0])
        assert (condition.type, condition.status, condition.reason) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        )


def test_a_service_account_token_has_only_the_rights_rbac_gives(kube_api: KubeAPIServer):
    """The trainer's token is that ServiceAccount to RBAC: no Role grants it Secrets (the executor's Role,
    which other tests apply, has none either)."""
    from kubernetes import client

    user, _ = service_account_user(NAMESPACE, TRAINER_SERVICE_ACCOUNT)
    with pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(kube_api.client(user)).list_namespaced_secret(NAMESPACE)
    assert refused.value.status == 403
    import json

    message = json.loads(refused.value.body)["message"]
    assert f'User "{user}" cannot list resource "secrets"' in message
