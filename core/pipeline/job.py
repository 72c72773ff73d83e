"""One training job of the Train RPC, run in its own process: train → export → quantize → validate → gate.

The server spawns ``python -m tuneserve.pipeline.job SPEC EVENTS_FD`` in a new process group. ``SPEC`` is a
JSON ``JobSpec``; events go to the pipe ``EVENTS_FD`` as JSON lines (stdout and stderr are the job's log).
A Kubernetes Job runs ``python -m tuneserve.pipeline.job --staged LOCATION --events -`` instead: the inputs
come from ``LOCATION`` (``tuneserve.pipeline.staged``), and the events go to stdout as JSON lines marked
with ``"tuneserve_event": 1``, among the pod's log lines (structured logs go to stderr).
The job publishes the new version into the model store (never as the serving version); promotion is the
server's, because only the server can load and warm a version before it serves.

Events: ``{"type": "stage", "stage", "message"}``, ``{"type": "progress", "step", "total", "epoch", "loss",
"metrics"}``, ``{"type": "validated", "metrics", "primary_metric"}``, ``{"type": "gate", "baseline_version",
"baseline_metrics", "passed", "promote", "reason"}``, ``{"type": "registered", "version"}``, and finally
``{"type": "failed", "error"}`` or ``{"type": "cancelled"}`` (exit status 0, 1, or ``CANCELLED_EXIT``).

SIGTERM asks the job to stop: it is checked between training steps and between stages; once the job has
announced the ``promoting`` stage it finishes (the point of no return of CancelTrainingJob).

A job with ``nproc_per_node`` > 1 trains under torchrun (``tuneserve.trainer.launch``): its ranks run in a
session of their own, rank 0's progress becomes the job's events, a cancel reaches every rank through rank
0, and a failed rank fails the job with that rank's error. Export and gating run here, in one process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tuneserve.repository import StoreConfig

CANCELLED_EXIT = 3
EVENT_MARK = "tuneserve_event"  # the key that marks an event line among a pod's log lines


class JobSpec(BaseModel):
    """Everything a job needs; written by the server, read here."""

    job_id: str
    model: str
    task: str  # "classification" | "ner"
    base_model: str | None  # None: the packaged default
    train: Path
    validation: Path
    store: StoreConfig  # the model store the new version is published into
    hyperparameters: dict[str, Any]  # TrainConfig fields
    multi_label: bool = False
    quantize: str = "int8"  # int8 | fp16 | none
    int8_mode: str = "dynamic"
    policy: str = "promote_if_better"  # or "register_only"
    tolerance: float = 0.0  # metric fraction
    minimum_metric: float | None = None
    labels_replaced: bool = False  # the label set differs from the serving version's (replace_labels)
    threads: int = 1  # of the whole job: shared by its training processes
    nproc_per_node: int = 1  # training processes (DDP through torchrun when > 1)
    nnodes: int = 1  # nodes (pods of an Indexed Job: the Kubernetes executor only)
    gpus_per_node: int = 0  # nvidia.com/gpu of each pod (the Kubernetes executor only)
    device: str = "auto"
    signing_key: Path | None = None  # Ed25519 private key (PEM) the new version is signed with
    search: dict[str, Any] | None = None  # trainer.search.SearchConfig.as_dict(); None: one run
    report_to: str = "none"  # experiment tracking: none | mlflow | tensorboard
    tensorboard_dir: Path | None = None  # report_to tensorboard: where the event files go


class _Events:
    def __init__(self, fd: int, marked: bool = False) -> None:
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._last_progress = 0.0
        self._mark = {EVENT_MARK: 1} if marked else {}

    def send(self, kind: str, **fields: Any) -> None:
        self._out.write(json.dumps({**self._mark, "type": kind, **fields}) + "\n")
        self._out.flush()

    def progress(self, step: int, total: int, epoch: float, loss: float | None, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.5 or step == total:  # at most two a second
            self._last_progress = now
            self.send("progress", step=step, total=total, epoch=epoch, loss=loss or 0.0)


class _Stop:
    """SIGTERM sets the flag; ``check()`` raises ``Cancelled`` until the point of no return."""

    def __init__(self) -> None:
        self.requested = False
        self.final = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested and not self.final

    def check(self) -> None:
        from tuneserve.progress import Cancelled

        if self():
            raise Cancelled("the job was cancelled")


def _gate(spec: JobSpec, metric: str, new: dict[str, float]) -> dict[str, Any]:
    """Measure the serving version (if any) on the same validation data and decide about promotion."""
    from tuneserve.data import DataError
    from tuneserve.exporter.export import measure_version
    from tuneserve.repository import StoreError, open_store

    store = open_store(spec.store)
    baseline_version = store.serving_version(spec.model) if spec.model in store.models() else None
    value, floor = new[metric], spec.minimum_metric
    checks: list[tuple[bool, str]] = []  # (passed, why)
    if floor is not None:
        ok = value >= floor
        checks.append((ok, f"{metric} {value:.4f} {'>=' if ok else '<'} minimum {floor:.4f}"))
    baseline: dict[str, float] = {}
    if baseline_version is None:
        checks.append((True, "first version of the model"))
    elif spec.labels_replaced:
        checks.append((True, f"labels replaced: not compared with serving version {baseline_version}"))
    else:
        try:
            opened = store.open_version(spec.model, baseline_version)
            baseline = measure_version(opened, spec.validation, spec.threads)
        except (DataError, StoreError, KeyError) as exc:
            cause = str(exc).replace(str(spec.validation), "validation_data")
            why = f"serving version {baseline_version} cannot be measured on this validation data ({cause})"
            checks.append((False, why))
        else:
            old, tol = baseline[metric], spec.tolerance
            ok = value >= old - tol
            checks.append(
                (ok, f"{metric} {value:.4f} {'>=' if ok else '<'} baseline {old:.4f} - tolerance {tol:.4f}")
            )
    passed = all(ok for ok, _ in checks)
    reason = "; ".join(why for _, why in checks)
    promote = passed
    if spec.policy == "register_only" and baseline_version is not None:
        promote, reason = False, f"policy REGISTER_ONLY (gate {'passed' if passed else 'failed'}: {reason})"
    return {
        "baseline_version": 0 if spec.labels_replaced else baseline_version or 0,
        "baseline_metrics": baseline,
        "passed": passed,
        "promote": promote,
        "reason": reason,
    }


class Node(BaseModel):
    """Which node of a multi-node job this worker is (the Kubernetes executor's Indexed Job)."""

    rank: int = 0
    rdzv_endpoint: str | None = None


def run(spec: JobSpec, events: _Events, stop: _Stop, node: Node | None = None) -> None:
    node = node or Node()
    import torch

    from tuneserve.exporter.export import ExportConfig, export
    from tuneserve.progress import Progress
    from tuneserve.quality import primary_metric
    from tuneserve.repository import Manifest
    from tuneserve.trainer import search, tracking
    from tuneserve.trainer.launch import Launch, launch
    from tuneserve.trainer.train import TrainConfig, train

    torch.set_num_threads(max(1, spec.threads))
    work = spec.train.parent
    metric = primary_metric(spec.task, spec.multi_label)
    seen_stages: set[str] = set()

    def stage(name: str, message: str = "") -> None:
        if name not in seen_stages:
            seen_stages.add(name)
            events.send("stage", stage=name, message=message)

    how = search.SearchConfig.from_dict(spec.search) if spec.search else None
    trial: dict[str, Any] = {}  # the running trial of a search

    def on_trial(record: dict[str, Any]) -> None:
        trial.clear()
        trial.update(record)
        state = record["state"]
        shown = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in record["params"].items()
        )
        if state == "running":
            message = f"trial {record['number']} started: {shown}"
        else:
            value = record.get("value")
            outcome = f"{metric} {value:.4f}" if value is not None else record.get("error", "")
            message = f"trial {record['number']} {state}: {outcome} ({shown})"
        events.send("trial", trial=record, primary_metric=metric, message=message)

    def on_train_progress(p: Progress) -> None:
        if p.stage == "evaluating":
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in sorted(p.metrics.items(), key=lambda kv: kv[0] != metric)
            )
            epochs = trial.get("params", {}).get("epochs", spec.hyperparameters.get("epochs"))
            of_epochs = f"/{epochs:g}" if isinstance(epochs, int | float) else ""
            of_trial = f"trial {trial['number']}: " if trial else ""
            events.send(
                "progress",
                step=p.step,
                total=p.total,
                epoch=p.epoch,
                loss=p.loss or 0.0,
                metrics=p.metrics,
                primary_metric=metric,
                message=f"{of_trial}epoch {p.epoch:.0f}{of_epochs}: {shown}",
            )
        else:
            events.progress(p.step, p.total, p.epoch, p.loss)

    stage("training")
    config = TrainConfig(
        task=spec.task,  # type: ignore[arg-type]
        train=spec.train,
        validation=spec.validation,
        output=work / "checkpoint",
        base=spec.base_model,
        multi_label=spec.multi_label,
        device=spec.device,  # type: ignore[arg-type]
        progress_bar=False,
        **spec.hyperparameters,
    )

    def train_fn(config: TrainConfig, on_progress: Any, should_cancel: Any) -> Any:
        if spec.nproc_per_node > 1:
            ranks = Launch(
                nproc_per_node=spec.nproc_per_node,
                threads_per_rank=max(1, spec.threads // spec.nproc_per_node),
            )
            result = launch(config, ranks, on_progress=on_progress, should_cancel=should_cancel)
            assert result is not None  # one node: rank 0 is here
            return result
        return train(config, on_progress=on_progress, should_cancel=should_cancel)

    if spec.nnodes > 1:  # multi-node (never with a search: refused with the request); no tracking
        how_nodes = Launch(
            nproc_per_node=spec.nproc_per_node,
            nnodes=spec.nnodes,
            node_rank=node.rank,
            rdzv_endpoint=node.rdzv_endpoint,
            threads_per_rank=max(1, spec.threads // spec.nproc_per_node),
        )
        found = launch(config, how_nodes, on_progress=on_train_progress, should_cancel=stop)
        if found is None:  # a node without rank 0 only trains
            return
        outcome = search.SearchOutcome(found, {})
    else:
        tracker = tracking.open_tracker(spec.report_to, spec.tensorboard_dir)
        outcome = search.run(
            config,
            how,
            tracker,
            name=f"{spec.model}-job-{spec.job_id}",
            tags={"tuneserve.job_id": spec.job_id, "tuneserve.model": spec.model},
            on_progress=on_train_progress,
            should_cancel=stop,
            on_trial=on_trial,
            train_fn=train_fn,
        )
    result = outcome.result
    if outcome.summary:
        s = outcome.summary
        events.send(
            "search",
            summary=s,
            history=next((t["history"] for t in s["trials"] if t["number"] == s["best_trial"]), []),
        )
    if outcome.cancelled:  # keep_best_on_cancel: the best trial goes on; a second cancel stops it
        stop.requested = False
    best = max(result.history, key=lambda h: h.get(metric, float("-inf")), default={})
    of_trial = f"trial {outcome.summary['best_trial']}, " if outcome.summary else ""
    stage(
        "evaluating",
        f"best: {of_trial}epoch {best.get('epoch', 0):.0f}: {metric} {result.metrics.get(metric, 0):.4f}",
    )
    stop.check()

    def on_export_progress(p: Progress) -> None:
        stop.check()
        stage(p.stage, p.message)

    def before_publish(staged: Path, manifest: Manifest) -> None:
        stop.check()
        served = manifest.metrics.get("served") or manifest.metrics["onnx_fp32"]
        events.send("validated", metrics=served, primary_metric=metric)
        stage("gating")
        decision = _gate(spec, metric, served)
        events.send("gate", **decision)
        stop.check()
        stop.final = True  # past the point of no return: registration always completes
        stage("promoting", "registering the new version")

    quantize = spec.quantize
    exported = export(
        ExportConfig(
            checkpoint=work / "checkpoint",
            model_root=spec.store,
            name=spec.model,
            quantize=quantize,  # type: ignore[arg-type]
            int8_mode=spec.int8_mode,  # type: ignore[arg-type]
            serve_if_first=False,
            staging_tag=f"job-{spec.job_id}",
            threads=max(1, spec.threads),
            signing_key=spec.signing_key,
        ),
        on_progress=on_export_progress,
        before_publish=before_publish,
    )
    events.send("registered", version=exported.version)


def _exit_with_parent() -> None:
    """Die with the server: a job whose server is gone would publish a version nobody promotes or records."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _staged(argv: list[str]) -> tuple[Path, _Events, Node]:
    """``--staged LOCATION --events - [--rdzv-endpoint HOST:PORT]`` (a Kubernetes Job's container): fetch
    the staged inputs into a scratch folder (``TUNESERVE_JOB_SCRATCH``, else a temporary one); events go
    to stdout, marked, and whatever else wrote to stdout goes to stderr. The node rank is
    ``JOB_COMPLETION_INDEX`` (an Indexed Job's pod index)."""
    import argparse
    import tempfile

    from tuneserve.pipeline import staged

    parser = argparse.ArgumentParser(prog="python -m tuneserve.pipeline.job")
    parser.add_argument("--staged", required=True)
    parser.add_argument("--events", choices=["-"], default="-")
    parser.add_argument("--rdzv-endpoint", default=None)
    args = parser.parse_args(argv)
    events_fd = os.dup(1)
    os.dup2(2, 1)  # library prints must not mix with the event lines
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8")
    events = _Events(events_fd, marked=True)
    scratch = Path(os.environ.get("TUNESERVE_JOB_SCRATCH") or tempfile.mkdtemp(prefix="tuneserve-job-"))
    work = scratch / "job"
    staged.fetch(args.staged, work)
    spec = JobSpec.model_validate_json((work / "spec.json").read_text())
    store = spec.store.model_copy(update={"cache_dir": scratch / "cache"})
    spec = spec.model_copy(
        update={"train": work / "train.jsonl", "validation": work / "validation.jsonl", "store": store}
    )
    (work / "spec.json").write_text(spec.model_dump_json())
    rank = int(os.environ.get("JOB_COMPLETION_INDEX") or 0)
    return work / "spec.json", events, Node(rank=rank, rdzv_endpoint=args.rdzv_endpoint)


def main(argv: list[str]) -> int:
    from tuneserve import logs
    from tuneserve.progress import Cancelled

    stop = _Stop()
    if argv and argv[0].startswith("--"):
        logs.configure("info", "json")
        try:
            spec_path, events, node = _staged(argv)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            _Events(os.dup(1), marked=True).send("failed", error=f"the job's inputs cannot be read: {exc}")
            return 1
    else:
        spec_path, events, node = Path(argv[0]), _Events(int(argv[1])), Node()
        _exit_with_parent()
        logs.configure("info", "json")
    if os.environ.get("TUNESERVE_JOB_NICE"):
        os.nice(int(os.environ["TUNESERVE_JOB_NICE"]))
    try:
        spec = JobSpec.model_validate_json(spec_path.read_text())
        run(spec, events, stop, node)
    except Cancelled:
        events.send("cancelled")
        return CANCELLED_EXIT
    except Exception as exc:  # reported to the server as the job's error; the traceback goes to the log
        import traceback

        traceback.print_exc()
        events.send("failed", error=_describe(exc, spec_path.parent))
        return 1
    return 0


def _describe(exc: BaseException, work: Path) -> str:
    """A one-paragraph error for the job record: the exception's own message, as users can act on it,
    with the job's own files named as the request's fields (they are internal paths of the server)."""
    text = str(exc).strip() or type(exc).__name__
    for name, field in (("train.jsonl", "training_data"), ("validation.jsonl", "validation_data")):
        text = text.replace(str(work / name), field).replace(str(work.resolve() / name), field)
    text = text.replace(str(work.resolve()), "the job's work folder").replace(
        str(work), "the job's work folder"
    )
    return text if len(text) < 2000 else text[:2000] + "…"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
