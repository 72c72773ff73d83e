"""The Kubernetes executor (``--training-executor kubernetes``): each job is a ``batch/v1`` Job.

The server stages the job's spec and data beside the model store (``tuneserve.pipeline.staged``), creates
the Job (and, for a multi-node job, its headless Service) as ``tuneserve.server.kubejobs`` renders them,
and watches the Job and its pods through the API (watches from a listed resourceVersion, listed again on
410 Gone), in threads of their own: the official client blocks, the event loop never does.

Progress travels as index 0's pod log: the worker writes its events on stdout as JSON lines marked
``"tuneserve_event": 1`` (its structured logs go to stderr), and the server follows the log
(``pods/log``, ``follow=True``) and hands the marked lines to the runner, as the local executor hands the
pipe's. Why the log: it costs no writes to the object store and no polling, ``pods/log`` is a right the
server needs anyway, and after a restart the log is read from its start and the events replayed (they set
state, so a replay is idempotent).

How a job ends:
- the container of index 0 terminated: its exit status (0 ok, 3 cancelled, else failed; the worker's own
  ``failed`` event gives the error);
- a pod fails with a reason: OOMKilled (container terminated), ImagePullBackOff/ErrImagePull (container
  waiting), Unschedulable for longer than ``unschedulable_timeout_s``, a Job condition Failed
  (BackoffLimitExceeded, DeadlineExceeded): FAILED with that reason, and the Job is deleted;
- a cancel deletes the Job with foreground propagation: CANCELLED once the Job is gone or its pod ended;
- a Job deleted by someone else: FAILED, saying so.

Jobs survive a restart of the server: on start-up, a running job whose Job still exists is followed again
(the Job is the source of truth for its liveness); one whose Job is gone fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import structlog

from tuneserve import objects
from tuneserve.pipeline import staged
from tuneserve.repository import StoreConfig
from tuneserve.server import kubejobs
from tuneserve.server.executors import Apply, Ended, Save
from tuneserve.server.executors.kubefollow import Follow
from tuneserve.server.jobstore import JobRecord
from tuneserve.server.settings import ConfigError, TrainingSettings

log = structlog.get_logger("tuneserve.server.executors.kubernetes")


class KubernetesExecutor:
    survives_restart = True

    def __init__(self, settings: TrainingSettings, store: StoreConfig) -> None:
        self.settings = settings
        self.kube = settings.kubernetes
        self.store = store
        self.namespace = self.kube.resolved_namespace
        self._api: Any = None
        self._lock = threading.Lock()
        if settings.signing_key is not None:
            raise ConfigError(
                "--training-signing-key is a file of this server, which Jobs cannot read: with "
                "--training-executor kubernetes, versions are not signed yet (use the local executor)"
            )
        if not objects.is_s3(store.root) and not self.kube.models_claim:
            raise ConfigError(
                f"the model root {store.root} is a folder of this server: Jobs reach it only through its "
                "PersistentVolumeClaim; name it with --training-kubernetes-models-claim, or use an s3:// "
                "model root"
            )
        self.api()  # a missing configuration stops start-up, not the first job
        if not self.kube.image:
            self.kube = self.kube.model_copy(update={"image": self._own_image()})

    # ------------------------------------------------------------------ client

    def api(self) -> Any:
        """The API client: in-cluster configuration first, else ``KUBECONFIG`` / ``~/.kube/config``."""
        with self._lock:
            if self._api is None:
                from kubernetes import client, config

                cfg = client.Configuration()
                try:
                    config.load_incluster_config(client_configuration=cfg)
                except config.ConfigException:
                    try:
                        config.load_kube_config(client_configuration=cfg)
                    except (config.ConfigException, OSError) as exc:
                        raise ConfigError(
                            "--training-executor kubernetes needs the Kubernetes API: this server runs "
                            "outside a cluster (no ServiceAccount token) and has no usable kubeconfig "
                            f"(KUBECONFIG, ~/.kube/config): {exc}"
                        ) from exc
                cfg.connection_pool_maxsize = 32
                self._api = client.ApiClient(cfg)
            return self._api

    def _own_image(self) -> str:
        """The image of this server's own pod (its name is the pod's hostname): the trainer runs the train
        image, which is what Jobs need, and an overlay that retags it retags the Jobs too."""
        from kubernetes.client.exceptions import ApiException

        pod_name = os.environ.get("HOSTNAME") or socket.gethostname()
        try:
            pod = self.core().read_namespaced_pod(pod_name, self.namespace)
        except ApiException as exc:
            raise ConfigError(
                f"--training-kubernetes-image is unset and this server's own pod {self.namespace}/{pod_name} "
                f"cannot be read for its image ({_api_error(exc)}): set the image of the training Jobs"
            ) from exc
        return str(pod.spec.containers[0].image)

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api())

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api())

    # ------------------------------------------------------------------ Executor

    async def run(self, job: JobRecord, apply: Apply, save: Save, attach: bool = False) -> Ended:
        name = kubejobs.job_name(job.id)
        if not attach:
            where = staged.location(self.store.root, job.id)
            await asyncio.to_thread(_stage, job, where)
            job.kube_job = f"{self.namespace}/{name}"
            await save()  # before the Job exists: a restart in between finds the name, and no Job
            from kubernetes.client.exceptions import ApiException

            try:
                await asyncio.to_thread(self._create, job, where)
            except ApiException as exc:
                log.error("the Job cannot be created", job=job.id, kube_job=job.kube_job, exc_info=exc)
                return Ended(1, f"the Kubernetes Job {job.kube_job} cannot be created: {_api_error(exc)}")
            log.info("job started", job=job.id, model=job.model, kube_job=job.kube_job)
            if job.cancel_requested:  # cancelled between the queue and the Job's creation
                await self.cancel(job)
        follow = Follow(self, job, name, apply, asyncio.get_running_loop())
        try:
            ended = await follow.run()
        finally:
            follow.close()
        if ended.code != 0:
            await asyncio.to_thread(self._delete, name, "Background")
        elif int(job.spec.get("nnodes", 1)) > 1:
            await asyncio.to_thread(self._delete_service, name)
        return ended

    async def cancel(self, job: JobRecord) -> None:
        await asyncio.to_thread(self._delete, kubejobs.job_name(job.id), "Foreground")

    async def stop(self, job: JobRecord) -> None:
        pass  # the Job goes on; the next start follows it again

    async def recover(self, job: JobRecord) -> bool:
        if not job.kube_job:
            return False
        from kubernetes.client.exceptions import ApiException

        try:
            await asyncio.to_thread(
                self.batch().read_namespaced_job, kubejobs.job_name(job.id), self.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                log.warning("the Job of a running job is gone", job=job.id, kube_job=job.kube_job)
                return False
            log.warning("cannot read the Job of a running job; following it", job=job.id, error=str(exc))
        return True

    def clean(self, job: JobRecord) -> None:
        staged.remove(staged.location(self.store.root, job.id))
        if int(job.spec.get("nnodes", 1)) > 1:
            self._delete_service(kubejobs.job_name(job.id))

    def describe(self, job: JobRecord) -> str:
        return f"Kubernetes Job {job.kube_job or self.namespace + '/' + kubejobs.job_name(job.id)}"

    # ------------------------------------------------------------------ API calls (blocking)

    def _create(self, job: JobRecord, where: str) -> None:
        manifest = kubejobs.render_job(
            job_id=job.id,
            model=job.model,
            spec=job.spec,
            settings=self.kube,
            store=self.store,
            staged=where,
            env=os.environ,
        )
        if int(job.spec.get("nnodes", 1)) > 1:
            self.core().create_namespaced_service(self.namespace, kubejobs.render_service(job.id, self.kube))
        self.batch().create_namespaced_job(self.namespace, manifest)

    def _delete(self, name: str, propagation: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch().delete_namespaced_job(
                name, self.namespace, body=client.V1DeleteOptions(propagation_policy=propagation)
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _delete_service(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core().delete_namespaced_service(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _stage(job: JobRecord, where: str) -> None:
    work = Path(job.work_dir)
    spec = work / "spec.json"
    spec.write_text(json.dumps(job.spec))
    staged.stage(
        where,
        {
            "spec.json": spec,
            "train.jsonl": work / "train.jsonl",
            "validation.jsonl": work / "validation.jsonl",
        },
    )


def _api_error(exc: Any) -> str:
    """The API server's own message of a refused call (its Status body), else the HTTP status."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        return f"{exc.status} {json.loads(exc.body)['message']}"
    return f"{exc.status} {exc.reason}"
