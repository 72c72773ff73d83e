"""Serving benchmark: bare ONNX Runtime against the live gRPC server, on the same model and texts.

    python benchmarks/serve.py [--model-root models] [--model sentiment] [--out benchmarks/results/serve.json]

For each variant of one exported classification model (int8 as exported, and its fp32 ONNX file):

- bare ONNX Runtime in this process (tokenize + run + softmax): batch 1 (p50, p99 per text, texts/s) and
  batch 32 (p50, p99 per batch, texts/s);
- the server (``python -m tuneserve.server``, a separate process) over gRPC, one text per call, at
  concurrency 1, 8 and 32 (p50, p99 per call, calls/s), from a Python grpc.aio load generator and, when
  ghz is installed (``go install github.com/bojand/ghz/cmd/ghz@v0.121.0``), from ghz too, side by side: a
  Go load generator on one core costs the shared 2 cores less per call than Python does;
- the same load over the Open Inference Protocol (KServe V2 ``ModelInfer``, the text as a raw BYTES tensor
  as tritonclient sends it, on the same port), from the same load generators (``server_v2``,
  ``server_v2_ghz``), so that both protocols are measured against the same bare figures;
- cold start: process start until health reports SERVING; server RSS after loading and its peak.
- C=1 and bare batch 1 once more, in alternating rounds (``--rounds``), as the median of per-round
  ratios: the machine's speed drift then cancels out of the C=1 target. Each round also measures C=1
  against ``reference_server.py`` (a grpc.aio server that only tokenizes, runs and answers), the floor
  of that ratio for a Python gRPC server on this machine.

Texts: sentences of ../shared/data/sst2/test.tsv and ../shared/data/conll2003/test.txt (both sets, the
same for every measurement). The figures are written as JSON, with the targets of issue 3 evaluated.
Nothing here asserts: it measures. Both sides use the same intra-op thread setting (default: all cores)
and the same sessions: batch 1 runs on a session whose intra-op threads spin, as the server's idle session
does for a request reaching an idle model; batch 32 on one whose threads sleep, as the server's batches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuneserve.encoding import encode_texts
from tuneserve.inference import OnnxModel
from tuneserve.localstore import LocalModelStore
from tuneserve.oip import open_inference_grpc_pb2 as v2_pb2
from tuneserve.oip import open_inference_grpc_pb2_grpc as v2_pb2_grpc
from tuneserve.server.tasks import classify
from tuneserve.v1 import inference_pb2, inference_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def load_texts(data: Path, limit: int) -> list[str]:
    texts: list[str] = []
    with (data / "sst2" / "test.tsv").open(encoding="utf-8") as f:
        next(f)
        texts += [line.split("\t")[0].strip() for line in f if line.strip()]
    words: list[str] = []
    for line in (data / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                texts.append(" ".join(words))
            words = []
        else:
            words.append(line.split()[0])
    texts = [t for t in texts if t]
    rng = np.random.default_rng(0)
    rng.shuffle(texts)  # type: ignore[arg-type]
    return texts[:limit]


def stats(seconds: list[float], items: int, elapsed: float) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "per_second": round(items / elapsed, 1),
        "n": len(seconds),
    }


class Bare:
    """Bare ONNX Runtime in this process: tokenize + run + softmax, with the server's sessions.

    The server runs a request reaching an idle model on a session whose threads spin (its idle session,
    unless there is a single intra-op thread) and batches on one whose threads sleep: batch 1 and batch 32
    are measured with the same sessions.
    """

    def __init__(
        self, folder: Path, onnx_file: str, max_length: int, labels: list[str], texts: list[str], threads: int
    ) -> None:
        self.model = OnnxModel(folder, onnx_file, max_length, intra_op_threads=threads)
        self.lone = OnnxModel(folder, onnx_file, max_length, intra_op_threads=threads, spinning=threads != 1)
        self.labels = labels
        self.texts = texts
        for i in range(0, 64, 8):  # warm up
            self.run(texts[i : i + 8])
            self.run(texts[i : i + 1])

    def run(self, batch: list[str]) -> None:
        m = self.lone if len(batch) == 1 else self.model
        rows = encode_texts(m.tokenizer, batch)
        classify.postprocess(m.logits(rows), rows, self.labels, False)

    def measure(self, size: int) -> dict[str, float]:
        """One pass over the texts in batches of ``size``."""
        texts = self.texts
        batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
        seconds = []
        start = time.perf_counter()
        for batch in batches:
            t0 = time.perf_counter()
            self.run(batch)
            seconds.append(time.perf_counter() - t0)
        return stats(seconds, len(batches) * size, time.perf_counter() - start)


class Server:
    def __init__(
        self,
        model_root: Path | str,
        threads: int,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.started = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "tuneserve.server",
            "--model-root",
            str(model_root),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--http-port",
            "0",
            "--intra-op-threads",
            str(threads),
            *extra_args,
        ]
        environ = {**os.environ, **(env or {}), "TUNESERVE_LOG_LEVEL": "info"}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=environ)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if '"listening"' in line:
                self.port = json.loads(line)["port"]
                break
        else:
            raise RuntimeError(f"server did not start (exit {self.proc.wait()})")
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        health = health_pb2_grpc.HealthStub(channel)
        while (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
            != health_pb2.HealthCheckResponse.SERVING
        ):
            time.sleep(0.005)
        self.cold_start_s = time.perf_counter() - self.started
        channel.close()
        self._logs = threading.Thread(target=self.proc.stderr.read, daemon=True)  # keep the pipe flowing
        self._logs.start()

    def rss_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = {
            line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")
        }
        return {
            "rss_mb": round(int(fields["VmRSS"]) / 1024, 1),
            "peak_rss_mb": round(int(fields["VmHWM"]) / 1024, 1),
        }

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self._logs.join(10)
        return code


def v2_request(model: str, text: str) -> v2_pb2.ModelInferRequest:
    """A V2 ModelInfer request for one text, raw as tritonclient sends it (4-byte length, then UTF-8)."""
    data = text.encode()
    return v2_pb2.ModelInferRequest(
        model_name=model,
        inputs=[v2_pb2.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])],
        raw_input_contents=[len(data).to_bytes(4, "little") + data],
    )


async def load(
    port: int, model: str, texts: list[str], concurrency: int, seconds: float, protocol: str = "v1"
) -> dict[str, float]:
    """``protocol``: "v1" (tuneserve.v1 Classify) or "v2" (Open Inference Protocol ModelInfer)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        if protocol == "v2":
            v2 = v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            requests = [v2_request(model, t) for t in texts]
            call: Any = v2.ModelInfer
        else:
            v1 = inference_pb2_grpc.InferenceServiceStub(channel)
            requests = [inference_pb2.ClassifyRequest(model=model, texts=[t]) for t in texts]
            call = v1.Classify
        for request in requests[:50]:  # warm up the connection and the model
            await call(request)
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await call(requests[i % len(requests)])
                latencies.append(time.perf_counter() - t0)
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return stats(latencies, len(latencies), time.perf_counter() - start)


def find_ghz(given: str | None) -> str | None:
    if given:
        return given
    gopath = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "ghz"
    return shutil.which("ghz") or (str(gopath) if gopath.exists() else None)


def load_ghz(
    ghz: str,
    port: int,
    model: str,
    texts: list[str],
    concurrency: int,
    seconds: float,
    work: Path,
    protocol: str = "v1",
) -> dict[str, float]:
    """The same load from ghz (the .proto files of this repository, one connection, one CPU for ghz)."""
    data = work / f"ghz-data-{protocol}.json"
    if protocol == "v2":
        requests = [json_format.MessageToDict(v2_request(model, t)) for t in texts]
        proto_file, method = (
            "proto/inference/open_inference_grpc.proto",
            "inference.GRPCInferenceService/ModelInfer",
        )
    else:
        requests = [{"model": model, "texts": [t]} for t in texts]
        proto_file, method = "proto/tuneserve/v1/inference.proto", "tuneserve.v1.InferenceService/Classify"
    data.write_text(json.dumps(requests))
    proto = ["--import-paths", str(ROOT / "proto"), "--proto", str(ROOT / proto_file)]
    base = [ghz, "--insecure", *proto, "--call", method, "-D", str(data)]
    base += ["--connections", "1", "--cpus", "1", "-O", "json", f"127.0.0.1:{port}"]
    subprocess.run([*base, "-n", "200", "-c", "1"], check=True, capture_output=True)  # warm up
    run = subprocess.run(
        [*base, "-c", str(concurrency), "-z", f"{seconds}s"], check=True, capture_output=True, text=True
    )
    report = json.loads(run.stdout)
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
    return {
        "p50_ms": round(latency[50], 3),
        "p99_ms": round(latency[99], 3),
        "per_second": round(report["rps"], 1),
        "n": report["count"],
        # When the duration ends, ghz cancels the calls still in flight or closes the connection under
        # them ("use of closed network connection"): those are not the server's errors.
        "errors": sum(
            n
            for message, n in (report.get("errorDistribution") or {}).items()
            if "code = Canceled" not in message and "use of closed network connection" not in message
        ),
    }


def measure_server(
    server: Server,
    result: dict[str, Any],
    name: str,
    texts: list[str],
    seconds: float,
    ghz: str | None,
    work: Path,
    label: str,
) -> None:
    result["cold_start_s"] = round(server.cold_start_s, 3)
    result["rss_after_start"] = server.rss_mb()
    result["server"] = {}
    for c in (1, 8, 32):
        result["server"][f"c{c}"] = asyncio.run(load(server.port, name, texts, c, seconds))
        print(f"[{label}] c={c}: {result['server'][f'c{c}']}", file=sys.stderr)
    result["server_v2"] = {}
    for c in (1, 8, 32):
        result["server_v2"][f"c{c}"] = asyncio.run(load(server.port, name, texts, c, seconds, "v2"))
        print(f"[{label}] V2 ModelInfer c={c}: {result['server_v2'][f'c{c}']}", file=sys.stderr)
    if ghz:
        for key, protocol in (("server_ghz", "v1"), ("server_v2_ghz", "v2")):
            result[key] = {}
            for c in (1, 8, 32):
                result[key][f"c{c}"] = load_ghz(ghz, server.port, name, texts, c, seconds, work, protocol)
                print(f"[{label}] ghz {protocol} c={c}: {result[key][f'c{c}']}", file=sys.stderr)
    result["rss_after_load"] = server.rss_mb()


class ReferenceServer:
    """``reference_server.py`` in its own process: the least a Python gRPC server does per call."""

    def __init__(self, model_root: Path, name: str) -> None:
        cmd = [sys.executable, str(ROOT / "benchmarks/reference_server.py"), str(model_root), name]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(json.loads(self.proc.stdout.readline())["port"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def paired_c1(
    bare: Bare,
    server: Server,
    reference: ReferenceServer,
    name: str,
    texts: list[str],
    ghz: str | None,
    work: Path,
    rounds: int,
) -> dict[str, Any]:
    """C=1 against bare batch 1 in alternating rounds: one pass of bare batch 1, then 4 s of C=1 calls to
    the reference server, 4 s to the server (tuneserve.v1) and 4 s to it over V2 ModelInfer.

    This machine's speed drifts by up to 2x within minutes; a ratio taken from two measurements minutes
    apart carries that drift, the median of per-round ratios far less of it. The reference server's ratio
    is the floor: what gRPC, the load generator and running in a server cost, with no serving logic.
    """

    def c1(port: int, protocol: str = "v1") -> float:
        if ghz:
            return load_ghz(ghz, port, name, texts, 1, 4.0, work, protocol)["p50_ms"]
        return asyncio.run(load(port, name, texts, 1, 4.0, protocol))["p50_ms"]

    out: list[dict[str, float]] = []
    for _ in range(rounds):
        b1 = bare.measure(1)["p50_ms"]
        ref, c1_ms, v2_ms = c1(reference.port), c1(server.port), c1(server.port, "v2")
        out.append(
            {
                "bare_batch1_p50_ms": b1,
                "reference_c1_p50_ms": ref,
                "server_c1_p50_ms": c1_ms,
                "server_v2_c1_p50_ms": v2_ms,
                "reference_ratio": round(ref / b1, 3),
                "ratio": round(c1_ms / b1, 3),
                "v2_ratio": round(v2_ms / b1, 3),
            }
        )
        print(f"[paired] {out[-1]}", file=sys.stderr)
    return {
        "load_generator": "ghz" if ghz else "python grpc.aio",
        "rounds": out,
        "median_ratio": round(float(np.median([r["ratio"] for r in out])), 3),
        "v2_median_ratio": round(float(np.median([r["v2_ratio"] for r in out])), 3),
        "reference_median_ratio": round(float(np.median([r["reference_ratio"] for r in out])), 3),
    }


def variants(store: LocalModelStore, name: str, root: Path) -> dict[str, tuple[str, str]]:
    """A store under ``root`` with the model twice: as exported (int8) and its fp32 ONNX file."""
    version = store.open_version(name)
    m = version.manifest
    bench = LocalModelStore(root)
    out = {}
    for label, onnx_file, quant in [
        ("int8", m.onnx_file, m.quantization.served),
        ("fp32", "model.onnx", "none"),
    ]:
        if label == "int8" and not quant.startswith("int8"):
            continue
        with bench.staging(f"bench-{label}") as staged:
            for f in m.files:
                (staged / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(version.path / f, staged / f)
            manifest = m.model_copy(
                update={
                    "onnx_file": onnx_file,
                    "quantization": m.quantization.model_copy(update={"served": quant}),
                }
            )
            bench.publish(f"bench-{label}", staged, manifest)
        out[label] = (f"bench-{label}", onnx_file)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-root", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="sentiment", help="A classification model in the store.")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--texts", type=int, default=1024, help="How many texts to use.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Duration of each server load level.")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)."
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="Alternating rounds of bare batch 1, reference server C=1 and server C=1.",
    )
    parser.add_argument("--ghz", default=None, help="ghz binary (default: on PATH or in $GOPATH/bin)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args()
    store = LocalModelStore(args.model_root)
    if store.serving_version(args.model) is None:
        sys.exit(
            f"no model {args.model!r} under {args.model_root}: build the demo models with "
            f"`tuneserve demo --model-root {args.model_root}` (a few minutes), or pass --model-root/--model"
        )
    texts = load_texts(args.data, args.texts)
    ghz = find_ghz(args.ghz)
    manifest = store.open_version(args.model).manifest
    figures: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "model": {
            "name": args.model,
            "version": manifest.version,
            "base_model": manifest.base_model,
            "max_length": manifest.max_length,
        },
        "texts": {"count": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1)},
        "load_generators": ["python grpc.aio"] + (["ghz"] if ghz else []),
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="tuneserve-bench-") as tmp:
        for label, (name, onnx_file) in variants(store, args.model, Path(tmp)).items():
            print(f"[{label}] bare ONNX Runtime", file=sys.stderr)
            version = LocalModelStore(tmp).open_version(name)
            bare = Bare(version.path, onnx_file, manifest.max_length, manifest.labels, texts, args.threads)
            result: dict[str, Any] = {"bare": {f"batch{n}": bare.measure(n) for n in (1, 32)}}
            print(f"[{label}] server", file=sys.stderr)
            server = Server(Path(tmp), args.threads)
            try:
                measure_server(server, result, name, texts, args.seconds, ghz, Path(tmp), label)
                reference = ReferenceServer(Path(tmp), name)
                try:
                    result["paired_c1"] = paired_c1(
                        bare, server, reference, name, texts, ghz, Path(tmp), args.rounds
                    )
                finally:
                    reference.stop()
            finally:
                result["server_exit_code"] = server.stop()
            result["targets"] = targets(result)
            figures["variants"][label] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """Issue 3's CPU targets, measured against this run's bare figures (with each load generator)."""
    peak = r["rss_after_load"]["peak_rss_mb"]
    found = {
        "cold_start_s": {"value": r["cold_start_s"], "target": "< 3", "met": r["cold_start_s"] < 3},
        "peak_rss_mb": {"value": peak, "target": "< 500", "met": peak < 500},
    }
    for key, suffix in (
        ("server", ""),
        ("server_ghz", "_ghz"),
        ("server_v2", "_v2"),
        ("server_v2_ghz", "_v2_ghz"),
    ):
        if key in r:
            found |= {k + suffix: v for k, v in load_targets(r["bare"], r[key]).items()}
    if "paired_c1" in r:
        paired = r["paired_c1"]
        found["c1_p50_over_bare_batch1_p50_paired"] = c1_target(paired["median_ratio"]) | {
            "load_generator": paired["load_generator"],
            "reference_server": paired["reference_median_ratio"],
        }
        found["v2_c1_p50_over_bare_batch1_p50_paired"] = c1_target(paired["v2_median_ratio"]) | {
            "load_generator": paired["load_generator"]
        }
    return found


def c1_target(ratio: float) -> dict[str, Any]:
    """Server C=1 p50 over bare batch-1 p50: at most 1.25."""
    return {"value": round(ratio, 2), "target": "<= 1.25", "met": ratio <= 1.25}


def load_targets(bare: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
    c1_ratio = server["c1"]["p50_ms"] / bare["batch1"]["p50_ms"]
    c32_ratio = server["c32"]["per_second"] / bare["batch32"]["per_second"]
    return {
        "c1_p50_over_bare_batch1_p50": c1_target(c1_ratio),
        "c32_throughput_over_bare_batch32": {
            "value": round(c32_ratio, 2),
            "target": ">= 0.9",
            "met": c32_ratio >= 0.9,
        },
    }


if __name__ == "__main__":
    main()
