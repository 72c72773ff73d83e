"""Retraining benchmark: serving latency while a Train job runs, time to promotion, failed calls in a swap.

    python benchmarks/retrain.py [--model-root models] [--out benchmarks/results/retrain.json]

On a copy of a model store that holds the demo models (``tuneserve demo``; built here if missing), one
``tuneserve serve`` process answers Classify for ``sentiment`` from a closed-loop load of ``--concurrency``
callers, one text per call, in three phases on the same host:

1. idle: no job (``--seconds`` long);
2. training: a Train job retrains ``sentiment`` on the shipped demo data with the demo recipe, and the same
   load runs while the job is in its training stage;
3. swap: the load continues through the gate and the promotion until the job ends.

It reports p50/p99 per call of phases 1 and 2 and their ratio, the time from Train to the job's end
(promoted), and the calls that failed (must be 0) with the versions that answered. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from tuneserve import data as datasets
from tuneserve.pipeline.demo import DATA, DEMOS
from tuneserve.v1 import inference_pb2, inference_pb2_grpc, training_pb2, training_pb2_grpc

TEXTS = [
    "What a wonderful film, I loved every minute.",
    "The service was slow and the food was cold.",
    "An average evening, nothing special.",
    "Absolutely brilliant performance by the whole cast!",
]


class Load:
    """Closed-loop Classify callers; latencies are tagged with the phase they ran in."""

    def __init__(self, target: str, concurrency: int) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.phase = "warmup"
        self.samples: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self.versions: set[int] = set()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(concurrency)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self.channel.close()

    def _run(self, i: int) -> None:
        n = i
        while not self._stop.is_set():
            text = TEXTS[n % len(TEXTS)]
            n += 1
            phase = self.phase
            start = time.perf_counter()
            try:
                reply = self.stub.Classify(
                    inference_pb2.ClassifyRequest(model="sentiment", texts=[text]), timeout=30
                )
            except grpc.RpcError as exc:
                self.failures.append(f"{phase}: {exc.code().name}: {exc.details()}")
                continue
            self.samples.setdefault(phase, []).append(time.perf_counter() - start)
            self.versions.add(reply.version)


def _stats(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1e3
    if not len(a):
        return {"calls": 0}
    return {
        "calls": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def _request() -> training_pb2.TrainRequest:
    spec = DEMOS["sentiment"]

    def examples(path: Path) -> training_pb2.Dataset:
        return training_pb2.Dataset(
            classification_examples=training_pb2.ClassificationExamples(
                examples=[
                    training_pb2.ClassificationExample(text=ex.text, labels=ex.labels)
                    for ex in datasets.read_classification(path)
                ]
            )
        )

    return training_pb2.TrainRequest(
        model="sentiment",
        training_data=examples(DATA / spec.train),
        validation_data=examples(DATA / spec.validation),
        hyperparameters=training_pb2.Hyperparameters(
            epochs=spec.epochs,
            max_length=spec.max_length,
            learning_rate=spec.learning_rate,
            batch_size=32,
            seed=7,
        ),
        promotion_tolerance=1.0,  # measure the swap: promote even if this run scores a little lower
    )


def _wait_listening(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "serving":
                threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()
                return int(event["port"]), lines
    raise SystemExit("the server exited before serving:\n" + "".join(lines[-30:]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-root", type=Path, default=Path("models"))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrain.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tuneserve-retrain-"))
    root = work / "models"
    if (args.model_root / "sentiment").is_dir():
        shutil.copytree(args.model_root, root, ignore=shutil.ignore_patterns(".jobs", ".tmp-*"))
    else:
        subprocess.run([sys.executable, "-m", "tuneserve.cli", "demo", "--model-root", str(root)], check=True)
    cmd = [sys.executable, "-m", "tuneserve.server", "--model-root", str(root), "--host", "127.0.0.1"]
    cmd += ["--port", "0", "--metrics-port", "0", "--metrics-host", "127.0.0.1", "--http-port", "0"]
    env = {**os.environ, "TUNESERVE_LOG_FORMAT": "json"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        port, _ = _wait_listening(proc)
        target = f"127.0.0.1:{port}"
        load = Load(target, args.concurrency)
        load.start()
        time.sleep(3)
        load.phase = "idle"
        time.sleep(args.seconds)

        channel = grpc.insecure_channel(target)
        training = training_pb2_grpc.TrainingServiceStub(channel)
        submitted = time.perf_counter()
        job = training.Train(_request()).job
        get = training_pb2.GetTrainingJobRequest(job_id=job.id)
        while training.GetTrainingJob(get).job.stage < training_pb2.TRAINING_STAGE_TRAINING:
            time.sleep(0.2)
        load.phase = "training"
        training_until = time.perf_counter() + args.seconds
        while time.perf_counter() < training_until:
            if training.GetTrainingJob(get).job.stage > training_pb2.TRAINING_STAGE_TRAINING:
                break
            time.sleep(0.2)
        load.phase = "after_training"
        while (job := training.GetTrainingJob(get).job).state in (
            training_pb2.JOB_STATE_QUEUED,
            training_pb2.JOB_STATE_RUNNING,
        ):
            time.sleep(0.2)
        finished = time.perf_counter()
        time.sleep(2)
        load.stop()
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    idle, busy = _stats(load.samples.get("idle", [])), _stats(load.samples.get("training", []))
    result: dict[str, Any] = {
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "concurrency": args.concurrency,
        "idle": idle,
        "during_training": busy,
        "p99_ratio_training_vs_idle": round(busy["p99_ms"] / idle["p99_ms"], 2)
        if busy.get("calls")
        else None,
        "p50_ratio_training_vs_idle": round(busy["p50_ms"] / idle["p50_ms"], 2)
        if busy.get("calls")
        else None,
        "job": {
            "state": training_pb2.JobState.Name(job.state),
            "version": job.version,
            "promoted": job.promoted,
            "promotion_reason": job.promotion_reason,
            "new_metrics": dict(job.new_metrics),
            "baseline_metrics": dict(job.baseline_metrics),
            "error": job.error,
        },
        "train_to_finished_seconds": round(finished - submitted, 1),
        "calls_total": sum(len(v) for v in load.samples.values()),
        "failed_calls": len(load.failures),
        "failures": load.failures[:10],
        "versions_answering": sorted(load.versions),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
