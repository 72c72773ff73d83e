"""Following one Kubernetes Job of a training job until it ended (see ``executors/kubernetes.py``).

Threads watch the Job and its pods (list, then watch from the listed resourceVersion; list again after 410
Gone or an error) and follow index 0's pod log, posting what they see to an asyncio queue; ``Follow.run``
decides, on the event loop, when and how the job ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from tuneserve.server import kubejobs
from tuneserve.server.executors import Apply, Ended
from tuneserve.server.jobstore import JobRecord

if TYPE_CHECKING:
    from tuneserve.server.executors.kubernetes import KubernetesExecutor

log = structlog.get_logger("tuneserve.server.executors.kubernetes")

CANCELLED_EXIT = 3
WATCH_TIMEOUT_S = 10  # a watch request's length; the watcher threads check for their end between requests
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
# Waiting reasons of a container that will not start by waiting longer.
BAD_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError")
_LOG_TAIL_LINES = 20
UNSCHEDULABLE = "unschedulable"


class Follow:
    """Follows one Job until its job ended: watcher threads post what they see to an asyncio queue, and
    ``run`` decides."""

    def __init__(
        self,
        executor: KubernetesExecutor,
        job: JobRecord,
        name: str,
        apply: Apply,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.x = executor
        self.job = job
        self.name = name
        self.apply = apply
        self.loop = loop
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.stopped = threading.Event()
        self.log_tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
        self._log_pod: str | None = None
        self._responses: list[Any] = []

    def post(self, *item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def close(self) -> None:
        self.stopped.set()
        for response in list(self._responses):
            with contextlib.suppress(Exception):
                response.close()

    def _thread(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, name=f"kube-{self.job.id}", daemon=True).start()

    async def run(self) -> Ended:
        x, ns = self.x, self.x.namespace
        self._thread(
            self._watch,
            "job",
            x.batch().list_namespaced_job,
            {"field_selector": f"metadata.name={self.name}"},
        )
        self._thread(
            self._watch, "pod", x.core().list_namespaced_pod, {"label_selector": f"job-name={self.name}"}
        )
        log.debug("following", job=self.job.id, kube_job=f"{ns}/{self.name}")
        pods: dict[str, Any] = {}
        pods_listed = job_gone = job_deleting = False
        job_finished = ""  # "Complete" or "Failed: reason: message"
        exit0: tuple[int, str] | None = None  # index 0's container: (exit code, reason)
        log_done = False
        unschedulable: tuple[float, str] | None = None
        timeout = self.x.kube.unschedulable_timeout_s
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), 1.0 if unschedulable else None)
            except TimeoutError:
                item = ("tick",)
            kind = item[0]
            if kind == "event":
                await self.apply(item[1])
                continue
            if kind == "log-done":
                log_done = True
            elif kind == "job-list":
                if not item[1]:
                    job_gone = True
                for obj in item[1]:
                    job_deleting, job_finished = self._job_state(obj)
            elif kind == "job":
                if item[1] == "DELETED":
                    job_gone = True
                else:
                    job_deleting, job_finished = self._job_state(item[2])
            elif kind in ("pod-list", "pod"):
                if kind == "pod-list":
                    pods = {p.metadata.name: p for p in item[1]}
                    pods_listed = True
                elif item[1] == "DELETED":
                    pods.pop(item[2].metadata.name, None)
                else:
                    pods[item[2].metadata.name] = item[2]
                previous, unschedulable = unschedulable, None
                for pod in pods.values():
                    verdict = self._pod_state(pod)
                    if verdict == UNSCHEDULABLE:
                        since = (previous or (time.monotonic(), ""))[0]
                        unschedulable = (since, _condition_message(pod))
                    elif verdict is not None:
                        return self._failed(verdict)
                    if _index(pod) == 0:
                        exit0 = _terminated(pod) or exit0
                        if self._log_pod != pod.metadata.name and _started(pod):
                            self._log_pod = pod.metadata.name
                            self._thread(self._follow_log, pod.metadata.name)
            if unschedulable and time.monotonic() - unschedulable[0] > timeout:
                return self._failed(f"Unschedulable for more than {timeout:g} s: {unschedulable[1]}")
            cancelled = self.job.cancel_requested
            if cancelled and (job_gone or (exit0 is not None and exit0[0] != 0 and log_done)):
                return Ended(CANCELLED_EXIT)
            if exit0 is not None and (log_done or job_gone):
                code, reason = exit0
                if code == 0:
                    return Ended(0)
                if job_deleting or job_gone:
                    return Ended(code, self._deleted(), interrupted=True)
                return Ended(code, self._crash(code, reason))
            if job_finished.startswith("Failed") and (log_done or self._log_pod is None):
                return self._failed(f"the Kubernetes Job failed ({job_finished[len('Failed: ') :]})")
            if job_gone:
                return Ended(1, self._deleted(), interrupted=True)
            if job_finished and pods_listed and not any(_index(p) == 0 for p in pods.values()):
                return Ended(
                    1,
                    f"the Kubernetes Job {self.x.namespace}/{self.name} finished while the server was away, "
                    "and its pod is gone: the outcome is unknown; submit the job again",
                )

    def _failed(self, why: str) -> Ended:
        log.warning("kubernetes job failed", job=self.job.id, kube_job=self.name, reason=why)
        return Ended(1, why)

    def _deleted(self) -> str:
        return (
            f"the Kubernetes Job {self.x.namespace}/{self.name} was deleted while the job ran (not by "
            "CancelTrainingJob); submit the job again"
        )

    def _crash(self, code: int, reason: str) -> str:
        tail = "\n".join(self.log_tail).strip()
        why = f" ({reason})" if reason else ""
        text = f"the job's container exited with status {code}{why}"
        return text + (f"; its log ends with: {tail[-1500:]}" if tail else "")

    @staticmethod
    def _job_state(obj: Any) -> tuple[bool, str]:
        deleting = obj.metadata.deletion_timestamp is not None
        for cond in (obj.status and obj.status.conditions) or []:
            if cond.status != "True":
                continue
            if cond.type == "Complete":
                return deleting, "Complete"
            if cond.type == "Failed":
                return deleting, f"Failed: {cond.reason or 'Failed'}: {cond.message or ''}".rstrip(": ")
        return deleting, ""

    def _pod_state(self, pod: Any) -> str | None:
        """A failure reason of ``pod`` in words, ``UNSCHEDULABLE``, or None."""
        where = f"pod {pod.metadata.name}"
        for cs in (pod.status and pod.status.container_statuses) or []:
            waiting = cs.state and cs.state.waiting
            if waiting and waiting.reason in BAD_WAITING:
                return (
                    f"{waiting.reason}: {where} cannot start its container: {waiting.message or ''}".rstrip(
                        ": "
                    )
                )
            terminated = cs.state and cs.state.terminated
            if terminated and terminated.reason == "OOMKilled":
                return (
                    f"OOMKilled: {where} ran out of memory (exit status {terminated.exit_code}); raise "
                    "--training-kubernetes-memory-limit or lower the batch size"
                )
            if terminated and terminated.exit_code and _index(pod) != 0:
                return (
                    f"node {_index(pod)} of the job failed: {where} exited with status {terminated.exit_code}"
                )
        for cond in (pod.status and pod.status.conditions) or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                return UNSCHEDULABLE
        return None

    # ------------------------------------------------------------------ threads

    def _watch(self, kind: str, list_fn: Callable[..., Any], selector: dict[str, str]) -> None:
        """List, then watch from the listed resourceVersion; list again after 410 Gone or an error."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        ns = self.x.namespace
        version: str | None = None
        while not self.stopped.is_set():
            try:
                if version is None:
                    listing = list_fn(ns, **selector)
                    version = listing.metadata.resource_version
                    self.post(f"{kind}-list", listing.items)
                w = watch.Watch()
                for event in w.stream(
                    list_fn, ns, resource_version=version, timeout_seconds=WATCH_TIMEOUT_S, **selector
                ):
                    if self.stopped.is_set():
                        w.stop()
                        break
                    version = w.resource_version
                    self.post(kind, event["type"], event["object"])
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watch failed; listing again", job=self.job.id, kind=kind, error=str(exc))
                    self.stopped.wait(1.0)
                version = None
            except Exception as exc:
                log.warning("watch failed; listing again", job=self.job.id, kind=kind, error=str(exc))
                version = None
                self.stopped.wait(1.0)

    def _follow_log(self, pod: str) -> None:
        """Follow ``pod``'s log from its start, posting the marked event lines; lines already seen are
        skipped when the stream breaks and is opened again."""
        from kubernetes.client.exceptions import ApiException

        seen = 0
        while not self.stopped.is_set():
            try:
                response = self.x.core().read_namespaced_pod_log(
                    pod, self.x.namespace, container=kubejobs.CONTAINER, follow=True, _preload_content=False
                )
                self._responses.append(response)
                count, rest = 0, b""
                for chunk in response.stream(65536, decode_content=True):
                    rest += chunk
                    *lines, rest = rest.split(b"\n")
                    for line in lines:
                        count += 1
                        if count > seen:
                            seen = count
                            self._line(line)
                if rest and count + 1 > seen:
                    seen = count + 1
                    self._line(rest)
                response.release_conn()
                if self._ended(pod):
                    break
            except ApiException as exc:
                if exc.status == 404:
                    break
                self.stopped.wait(1.0)  # e.g. 400 "container is waiting to start"
            except Exception as exc:
                if self.stopped.is_set():
                    return
                log.warning("log follow failed; following again", job=self.job.id, pod=pod, error=str(exc))
                self.stopped.wait(1.0)
        self.post("log-done")

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").strip()
        if line.startswith("{") and '"tuneserve_event"' in line:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.pop("tuneserve_event", None) == 1:
                    self.post("event", event)
                    return
        if line:
            self.log_tail.append(line)

    def _ended(self, pod: str) -> bool:
        """Whether ``pod``'s container has terminated (or the pod is gone): its log is complete."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.x.core().read_namespaced_pod(pod, self.x.namespace)
        except ApiException as exc:
            return exc.status == 404
        return _terminated(found) is not None or (found.status and found.status.phase) in (
            "Succeeded",
            "Failed",
        )


def _index(pod: Any) -> int:
    """The completion index of a Job's pod (0 for a job of one pod)."""
    for source in (pod.metadata.labels or {}, pod.metadata.annotations or {}):
        if INDEX_LABEL in source:
            with contextlib.suppress(ValueError):
                return int(source[INDEX_LABEL])
    for container in pod.spec.containers or []:
        for var in container.env or []:
            if var.name == "JOB_COMPLETION_INDEX" and var.value is not None:
                with contextlib.suppress(ValueError):
                    return int(var.value)
    return 0


def _terminated(pod: Any) -> tuple[int, str] | None:
    for cs in (pod.status and pod.status.container_statuses) or []:
        if cs.name == kubejobs.CONTAINER and cs.state and cs.state.terminated:
            return int(cs.state.terminated.exit_code), cs.state.terminated.reason or ""
    return None


def _started(pod: Any) -> bool:
    """Whether ``pod``'s container has started (its log can be read)."""
    for cs in (pod.status and pod.status.container_statuses) or []:
        if cs.name == kubejobs.CONTAINER and cs.state and (cs.state.running or cs.state.terminated):
            return True
    return False


def _condition_message(pod: Any) -> str:
    for cond in (pod.status and pod.status.conditions) or []:
        if cond.type == "PodScheduled" and cond.reason == "Unschedulable":
            return cond.message or "no node fits the pod"
    return "no node fits the pod"
