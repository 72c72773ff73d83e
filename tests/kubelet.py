"""A test kubelet for ``tests/kubeapi.py``'s API server: it plays the node, the Job controller and the
garbage collector, with local processes in place of containers.

``TestKubelet`` registers a Node, watches the batch/v1 Jobs of one namespace and, for each new Job, creates
its pods (one per completion index for an Indexed Job) bound to that node. It runs each pod's container
``command + args`` as a local process with the container's environment (``python``/``python3`` as the
command is the test's Python, ``tuneserve`` the script beside it), keeps its output as the container log,
and serves that log on a kubelet HTTPS endpoint, so ``read_namespaced_pod_log`` (also ``follow=True``)
works through the real API server. Pod and Job status follow the processes (Pending, Running, Succeeded
or Failed with the exit code; Job ``active``/``succeeded``/``failed`` and its Complete/Failed condition).

A Job being deleted (foreground propagation leaves it with a ``deletionTimestamp`` and the
``foregroundDeletion`` finalizer; background deletion removes it at once) has its processes stopped
(SIGTERM, then SIGKILL after the pod's grace period, at most ``max_grace_s``), its pods deleted and its
finalizer removed, as the garbage collector and the kubelet would.

Each emptyDir of a pod is a folder of its own under ``root``; the container's environment variables that
name its mount path are pointed there (the process sees this host's files, not a container's).

``simulate[job_name]`` makes a Job's pods fail the way a cluster does: ``"OOMKilled"`` (the process is
killed once it runs: terminated, reason OOMKilled, exit 137), ``"ImagePullBackOff"`` (waiting, never
runs) or ``"Unschedulable"`` (PodScheduled False, never bound).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NODE = "test-node"
SIMULATIONS = ("OOMKilled", "ImagePullBackOff", "Unschedulable")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Pod:
    name: str
    job: str
    index: int | None
    container: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    # Each emptyDir mount path of the container, and the folder of this pod that stands in for it.
    empty_dirs: dict[str, Path] = field(default_factory=dict)


class TestKubelet:
    """The node ``test-node`` for the Jobs of ``namespace``; ``stop()`` kills what still runs."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        max_grace_s: float = 10.0,
    ) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.sanitize = api_client.sanitize_for_serialization
        self.namespace = namespace
        self.root = Path(root)
        self.env = env if env is not None else dict(os.environ)
        self.max_grace_s = max_grace_s
        self.simulate: dict[str, str] = {}
        self.errors: list[str] = []  # what went wrong in here (asserted empty by careful tests)
        self.pods: dict[str, _Pod] = {}
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()  # one Job status update at a time, from the pods' state then
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        port = self._serve_logs()
        self._register_node(port)
        self._thread(self._watch_jobs, "jobs")
        self._thread(self._watch_pods, "pods")

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            pods = list(self.pods.values())
        for pod in pods:
            if pod.proc is not None and pod.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.proc.pid, signal.SIGKILL)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def log_of(self, pod_name: str) -> str:
        return self.pods[pod_name].log.read_text(errors="replace")

    def pods_of(self, job_name: str) -> list[str]:
        with self._lock:
            return [p.name for p in self.pods.values() if p.job == job_name]

    def running_processes(self) -> list[int]:
        """Pids of pod processes still alive."""
        with self._lock:
            return [p.proc.pid for p in self.pods.values() if p.proc is not None and p.proc.poll() is None]

    def _thread(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(
            target=self._guarded, args=(target, *args), name=f"kubelet-{name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Any, *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:  # kept for the test to see; a kubelet thread must not die silently
            if not self._stopped.is_set():
                self.errors.append(f"{target.__name__}: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ node

    def _register_node(self, port: int) -> None:
        body = {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}
        with contextlib.suppress(Exception):
            self.core.create_node(body)
        status = {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "test kubelet",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
            }
        }
        self.core.patch_node_status(NODE, status)

    def _serve_logs(self) -> int:
        """The kubelet's ``/containerLogs/NS/POD/CONTAINER`` endpoint over HTTPS (the API server does not
        verify a kubelet's certificate unless told a CA)."""
        kubelet = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                query = urllib.parse.parse_qs(url.query)
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                with kubelet._lock:
                    pod = kubelet.pods.get(parts[2])
                if pod is None or pod.proc is None:
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(
                        f'container "{parts[3]}" in pod "{parts[2]}" is waiting to start'.encode()
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                follow = query.get("follow", ["false"])[0] == "true"
                kubelet._stream(pod, self.wfile, follow)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = _self_signed(self.root)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True).start()
        return server.server_address[1]

    def _stream(self, pod: _Pod, out: Any, follow: bool) -> None:
        with pod.log.open("rb") as log:
            while True:
                chunk = log.read(65536)
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                if not follow or pod.done.is_set() or self._stopped.is_set():
                    rest = log.read()
                    if rest:
                        out.write(rest)
                    return
                time.sleep(0.05)

    # ------------------------------------------------------------------ jobs

    def _events(self, list_fn: Any) -> Any:
        """The watch events of ``list_fn`` in the namespace until the kubelet stops (a watch that ends is
        opened again, as an informer does)."""
        from kubernetes import watch

        while not self._stopped.is_set():
            stream = watch.Watch().stream(list_fn, self.namespace, timeout_seconds=5)
            for event in _tolerant(stream):
                if self._stopped.is_set():
                    return
                yield event

    def _watch_jobs(self) -> None:
        for event in self._events(self.batch.list_namespaced_job):
            job = event["object"]
            if event["type"] == "DELETED" or job.metadata.deletion_timestamp is not None:
                self._delete_job(job, gone=event["type"] == "DELETED")
            elif event["type"] == "ADDED" and self._new(job):
                self._create_pods(job)

    def _new(self, job: Any) -> bool:
        """Whether ``job`` has no pods yet (a watch lists every Job again each time it starts)."""
        if self.pods_of(job.metadata.name) or any(
            c.type in ("Complete", "Failed") for c in (job.status.conditions or []) if job.status
        ):
            return False
        selector = f"batch.kubernetes.io/job-name={job.metadata.name}"
        return not self.core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def _create_pods(self, job: Any) -> None:
        name = job.metadata.name
        indexed = job.spec.completion_mode == "Indexed"
        count = job.spec.parallelism if indexed else 1
        for index in range(count or 1):
            template = self.sanitize(job.spec.template)
            spec = template["spec"]
            labels = {
                **template.get("metadata", {}).get("labels", {}),
                "job-name": name,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": job.metadata.uid,
                "batch.kubernetes.io/controller-uid": job.metadata.uid,
            }
            annotations = dict(template.get("metadata", {}).get("annotations", {}) or {})
            if indexed:
                labels["batch.kubernetes.io/job-completion-index"] = str(index)
                annotations["batch.kubernetes.io/job-completion-index"] = str(index)
                spec.setdefault("hostname", f"{name}-{index}")
                for container in spec["containers"]:
                    container.setdefault("env", []).append(
                        {"name": "JOB_COMPLETION_INDEX", "value": str(index)}
                    )
            simulated = self.simulate.get(name)
            if simulated != "Unschedulable":
                spec["nodeName"] = NODE
            pod_name = (
                f"{name}-{index}-{uuid.uuid4().hex[:5]}" if indexed else f"{name}-{uuid.uuid4().hex[:5]}"
            )
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": job.metadata.uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
            }
            try:
                self.core.create_namespaced_pod(self.namespace, body)
            except Exception as exc:
                self.errors.append(f"pod of job {name} refused: {exc}")
                continue
            container = spec["containers"][0]
            pod = _Pod(
                pod_name, name, index if indexed else None, container["name"], self.root / f"{pod_name}.log"
            )
            pod.log.touch()
            empty = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
            for mount in container.get("volumeMounts") or []:
                if mount["name"] in empty:
                    folder = self.root / pod_name / mount["name"]
                    folder.mkdir(parents=True, exist_ok=True)
                    pod.empty_dirs[mount["mountPath"]] = folder
            with self._lock:
                self.pods[pod_name] = pod
            self._thread(self._run_pod, "pod", pod_name, pod, container, simulated)
        self._job_status(job.metadata.name)

    def _run_pod(self, pod_name: str, pod: _Pod, container: dict[str, Any], simulated: str | None) -> None:
        if simulated == "Unschedulable":
            self._pod_status(
                pod_name,
                "Pending",
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                        "lastTransitionTime": _now(),
                    }
                ],
            )
            return
        if simulated == "ImagePullBackOff":
            image = container.get("image", "")
            self._pod_status(
                pod_name,
                "Pending",
                state={
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}": ErrImagePull: not found',
                    }
                },
                container=container,
            )
            return
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        elif argv and argv[0] == "tuneserve":
            argv[0] = str(Path(sys.executable).parent / "tuneserve")
        env = {**self.env, **self._container_env(pod_name, container)}
        # A process here sees the host's files: an emptyDir is a folder of the pod's own, and the container's
        # variables that name its mount path name that folder instead.
        for path, folder in pod.empty_dirs.items():
            for key, value in env.items():
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    env[key] = str(folder) + value[len(path.rstrip("/")) :]
        if pod.index is not None:
            env["JOB_COMPLETION_INDEX"] = str(pod.index)
        cwd = container.get("workingDir")
        if not cwd or not Path(cwd).is_dir():
            cwd = str(self.root)
        if pod.stopping:
            return
        with pod.log.open("ab") as out:
            pod.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        started = _now()
        self._pod_status(pod_name, "Running", state={"running": {"startedAt": started}}, container=container)
        self._job_status(pod.job)
        if simulated == "OOMKilled":
            time.sleep(1.0)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod.proc.pid, signal.SIGKILL)
        code = pod.proc.wait()
        pod.done.set()
        if pod.stopping:
            return
        if simulated == "OOMKilled":
            reason, code = "OOMKilled", 137
        else:
            reason = "Completed" if code == 0 else "Error"
            code = (
                128 - code if code < 0 else code
            )  # killed by a signal: 128 + signal, as a container runtime says
        terminated = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": _now()}
        self._pod_status(
            pod_name,
            "Succeeded" if code == 0 else "Failed",
            state={"terminated": terminated},
            container=container,
        )
        self._job_status(pod.job)

    def _container_env(self, pod_name: str, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "valueFrom" in item:
                source = item["valueFrom"]
                if "fieldRef" in source:
                    path = source["fieldRef"]["fieldPath"]
                    env[item["name"]] = {"metadata.name": pod_name, "metadata.namespace": self.namespace}.get(
                        path, ""
                    )
                elif "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    secret = self.core.read_namespaced_secret(ref["name"], self.namespace)
                    env[item["name"]] = base64.b64decode(secret.data[ref["key"]]).decode()
        return env

    def _pod_status(
        self,
        pod_name: str,
        phase: str,
        *,
        state: dict[str, Any] | None = None,
        container: dict[str, Any] | None = None,
        conditions: list[dict[str, Any]] | None = None,
    ) -> None:
        status: dict[str, Any] = {"phase": phase}
        if conditions is None:
            ready = "True" if phase == "Running" else "False"
            conditions = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
                {"type": "Ready", "status": ready, "lastTransitionTime": _now()},
            ]
        status["conditions"] = conditions
        if state is not None and container is not None:
            status["containerStatuses"] = [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "state": state,
                }
            ]
        try:
            self.core.patch_namespaced_pod_status(pod_name, self.namespace, {"status": status})
        except Exception as exc:
            if not self._stopped.is_set() and getattr(exc, "status", None) != 404:
                self.errors.append(f"pod {pod_name} status: {exc}")

    def _job_status(self, job_name: str) -> None:
        """Job status from its pods, as the Job controller sets it (backoffLimit 0)."""
        with self._status_lock:
            self._update_job_status(job_name)

    def _update_job_status(self, job_name: str) -> None:
        with self._lock:
            pods = [p for p in self.pods.values() if p.job == job_name]
        try:
            job = self.batch.read_namespaced_job(job_name, self.namespace)
        except Exception:
            return
        if any(c.type in ("Complete", "Failed") for c in (job.status.conditions or [])):
            return  # finished: its status no longer changes
        codes = [p.proc.returncode for p in pods if p.proc is not None and p.done.is_set()]
        succeeded = sum(1 for c in codes if c == 0)
        failed = len(codes) - succeeded
        active = sum(1 for p in pods if p.proc is not None and not p.done.is_set())
        status: dict[str, Any] = {"active": active, "succeeded": succeeded, "failed": failed, "ready": active}
        status["startTime"] = (
            self.sanitize(job.status.start_time) if job.status and job.status.start_time else _now()
        )
        total = job.spec.completions or 1
        now = _now()
        if failed:
            status["conditions"] = [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
            ]
            status["active"] = 0
        elif succeeded >= total:
            status["conditions"] = [
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
            ]
            status["completionTime"] = now
        try:
            self.batch.patch_namespaced_job_status(job_name, self.namespace, {"status": status})
        except Exception as exc:
            if not self._stopped.is_set() and getattr(exc, "status", None) != 404:
                self.errors.append(f"job {job_name} status: {exc}")

    # ------------------------------------------------------------------ deletion

    def _watch_pods(self) -> None:
        """A pod deleted with a grace period waits for its kubelet: stop it, then remove it for good."""
        for event in self._events(self.core.list_namespaced_pod):
            obj = event["object"]
            if event["type"] != "DELETED" and obj.metadata.deletion_timestamp is not None:
                grace = obj.spec.termination_grace_period_seconds
                self._thread(self._stop_pod, "pod-stop", obj.metadata.name, grace)

    def _stop_pod(self, pod_name: str, grace: int | None) -> None:
        with self._lock:
            pod = self.pods.get(pod_name)
        if pod is not None and not pod.stopping:
            pod.stopping = True
            proc = pod.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(min(self.max_grace_s, 30 if grace is None else grace))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            pod.done.set()
        with contextlib.suppress(Exception):
            self.core.delete_namespaced_pod(pod_name, self.namespace, grace_period_seconds=0)

    def _delete_job(self, job: Any, gone: bool) -> None:
        name = job.metadata.name
        stoppers = []
        for pod_name in self.pods_of(name):
            thread = threading.Thread(
                target=self._stop_pod,
                args=(pod_name, job.spec.template.spec.termination_grace_period_seconds),
                daemon=True,
            )
            thread.start()
            stoppers.append(thread)
        for thread in stoppers:
            thread.join()
        if not gone and job.metadata.finalizers:
            with contextlib.suppress(Exception):
                self.batch.patch_namespaced_job(
                    name, self.namespace, [{"op": "remove", "path": "/metadata/finalizers"}]
                )


def _self_signed(root: Path) -> tuple[Path, Path]:
    """A throwaway certificate for the kubelet's HTTPS endpoint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NODE)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "kubelet.crt", root / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _tolerant(stream: Any) -> Any:
    """A watch stream that ends (to be opened again) on the API server's 504 "Too large resource version",
    which this API server answers now and then on etcd 3.4 (its watch cache behind etcd) instead of waiting;
    before, the kubelet's watch thread died of it and later Jobs never got pods."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield from stream
    except ApiException as exc:
        if exc.status != 504:
            raise
