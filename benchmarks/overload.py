"""Goodput under overload: texts per second answered within their deadline, 8 callers against 200.

    python benchmarks/overload.py [--model-root models] [--rounds 2] [--out benchmarks/results/overload.json]

For each task, against one live server (``python -m tuneserve.server``, default settings, a separate
process) over the store's ``sentiment`` (classification) and ``ner`` models:

- classification: callers send 256 texts per call (sentences of SST-2 and CoNLL-2003 test);
- NER: callers send 32 texts of 4,000 characters per call (CoNLL-2003 test sentences joined);

each call with a 10 s deadline. A round is ``--seconds`` of 8 callers (the baseline), then the same of 200
callers (25x): rounds alternate the two levels, so the machine's speed drift cancels out of the per-round
ratio (the median and the spread are reported). Callers are closed loops that behave like well-written
clients: after RESOURCE_EXHAUSTED they wait the advised time ("retry in about N ms") or, without advice
(gRPC's own limit), back off exponentially from 50 ms, with jitter; after any other error they go on.

Goodput counts the texts of calls answered OK within the level's time; every status is counted. The
server's RSS is read before the 200-caller level, right after it, and 5 s later (and its peak).

Models: found in ``--model-root``; when absent, a classification and an NER model are fine-tuned for one
epoch from the packaged all-MiniLM-L6-v2 on the test fixtures and exported (dynamic int8) into
``--build-root`` first (about two minutes). Their quality is irrelevant here; their cost is MiniLM-L6's.
Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from serve import DATA, ROOT, Server, load_texts

from tuneserve.localstore import LocalModelStore
from tuneserve.v1 import inference_pb2, inference_pb2_grpc

DEADLINE_S = 10.0
BASELINE, FLOOD = 8, 200
ADVICE = re.compile(r"retry in about (\d+) ms")


def ner_texts(data: Path, count: int, chars: int) -> list[str]:
    """``count`` texts of ``chars`` characters: CoNLL-2003 test sentences joined."""
    sentences: list[str] = []
    words: list[str] = []
    for line in (data / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(" ".join(words))
            words = []
        else:
            words.append(line.split()[0])
    texts, i = [], 0
    for _ in range(count):
        text = ""
        while len(text) < chars:
            text += sentences[i % len(sentences)] + " "
            i += 1
        texts.append(text[:chars])
    return texts


def build_models(root: Path) -> None:
    """Fine-tune MiniLM-L6 briefly on the test fixtures and export both tasks into ``root``."""
    cli = [sys.executable, "-m", "tuneserve.cli"]
    fixtures = ROOT / "tests" / "fixtures"
    work = root.parent / "overload-checkpoints"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, task, train, valid, max_length in [
        ("sentiment", "classification", "sentiment_train.tsv", "sentiment_validation.tsv", "64"),
        ("ner", "ner", "ner_train.conll", "ner_validation.conll", "128"),
    ]:
        print(f"building {name} ({task}, max length {max_length})", file=sys.stderr)
        train_args = ["--train", fixtures / train, "--validation", fixtures / valid, "--epochs", "1"]
        train_args += ["--batch-size", "16"]
        export_args = ["--quantize", "int8", "--tolerance", "100"]
        subprocess.run(
            [*cli, "train", "--task", task, *train_args, "--output", work / name, "--max-length", max_length],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            # int8 served whatever the (meaningless) quality: the cost of the usual served variant.
            [*cli, "export", work / name, "--model-root", root, "--name", name, *export_args],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )


async def level(port: int, rpc: str, request: Any, callers: int, seconds: float) -> dict[str, Any]:
    """``callers`` closed-loop callers for ``seconds``: goodput, status counts, latency of OK calls."""
    texts_per_call = len(request.texts)
    codes: Counter[str] = Counter()
    ok_seconds: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = getattr(inference_pb2_grpc.InferenceServiceStub(channel), rpc)
        start = time.perf_counter()
        stop_at = start + seconds

        async def caller() -> None:
            backoff = 0.05
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    await call(request, timeout=DEADLINE_S)
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    advice = ADVICE.search(exc.details() or "")
                    limit = code == grpc.StatusCode.RESOURCE_EXHAUSTED and not advice
                    codes[code.name + (" (gRPC concurrency limit)" if limit else "")] += 1
                    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
                        wait = int(advice.group(1)) / 1000 if advice else backoff
                        backoff = min(2.0, backoff * 2) if not advice else 0.05
                        await asyncio.sleep(
                            min(wait, stop_at - time.perf_counter(), 5.0) * random.uniform(0.5, 1.5)
                        )
                    continue
                end = time.perf_counter()
                if end <= stop_at:
                    codes["OK"] += 1
                    ok_seconds.append(end - t0)
                else:
                    codes["OK_after_level_end"] += 1
                backoff = 0.05

        tasks = [asyncio.ensure_future(caller()) for _ in range(callers)]
        await asyncio.sleep(seconds)
        # Calls still running when the level ends are not counted (nor waited for past their deadline).
        _, running = await asyncio.wait(tasks, timeout=DEADLINE_S + 2)
        for t in running:
            t.cancel()
    ok = codes["OK"]
    return {
        "callers": callers,
        "seconds": seconds,
        "texts_per_s": round(ok * texts_per_call / seconds, 2),
        "calls_ok": ok,
        "statuses": dict(codes),
        "ok_latency_p50_s": round(statistics.median(ok_seconds), 3) if ok_seconds else None,
        "ok_latency_max_s": round(max(ok_seconds), 3) if ok_seconds else None,
    }


def quiet() -> None:
    """Let the server settle between levels: ``level`` returns once every call it made has ended (or was
    cancelled), so the server's handlers have ended too but for a last run or two."""
    time.sleep(2.0)


def measure_task(server: Server, rpc: str, request: Any, rounds: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": []}
    for r in range(rounds):
        base = asyncio.run(level(server.port, rpc, request, BASELINE, seconds))
        quiet()
        rss_before = server.rss_mb()
        flood = asyncio.run(level(server.port, rpc, request, FLOOD, seconds))
        rss_right_after = server.rss_mb()
        time.sleep(5)
        quiet()
        ratio = flood["texts_per_s"] / base["texts_per_s"] if base["texts_per_s"] else None
        round_ = {
            "baseline": base,
            "flood": flood,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "rss_before_flood": rss_before,
            "rss_right_after_flood": rss_right_after,
            "rss_5s_after_flood": server.rss_mb(),
        }
        print(f"[{rpc}] round {r + 1}: {json.dumps(round_)}", file=sys.stderr)
        out["rounds"].append(round_)
    ratios = [x["ratio"] for x in out["rounds"] if x["ratio"] is not None]
    out["ratio_median"] = round(statistics.median(ratios), 3) if ratios else None
    out["ratio_min"] = min(ratios) if ratios else None
    out["ratio_max"] = max(ratios) if ratios else None
    out["target_ratio"] = 0.7
    out["target_met"] = bool(ratios) and statistics.median(ratios) >= 0.7
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-root", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--build-root", type=Path, default=ROOT / "benchmarks" / "results" / "overload-models"
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=2, help="Paired rounds (8 callers, then 200) per task.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Duration of each level.")
    parser.add_argument("--tasks", default="classification,ner")
    parser.add_argument("--classify-texts", type=int, default=256, help="Texts per Classify call.")
    parser.add_argument("--ner-texts", type=int, default=32, help="Texts (4,000 characters) per NER call.")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)."
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overload.json")
    args = parser.parse_args()
    root = args.model_root
    if any(LocalModelStore(root).serving_version(m) is None for m in ("sentiment", "ner")):
        root = args.build_root
        if any(LocalModelStore(root).serving_version(m) is None for m in ("sentiment", "ner")):
            build_models(root)
    store = LocalModelStore(root)
    texts = load_texts(args.data, args.classify_texts)
    classify = inference_pb2.ClassifyRequest(model="sentiment", texts=texts)
    ner = inference_pb2.ExtractEntitiesRequest(model="ner", texts=ner_texts(args.data, args.ner_texts, 4000))
    figures: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "models": {
            m: {
                "base_model": store.open_version(m).manifest.base_model,
                "max_length": store.open_version(m).manifest.max_length,
                "onnx_file": store.open_version(m).manifest.onnx_file,
            }
            for m in ("sentiment", "ner")
        },
        "deadline_s": DEADLINE_S,
        "callers": {"baseline": BASELINE, "flood": FLOOD},
        "tasks": {},
    }
    server = Server(root, args.threads)
    try:
        figures["rss_after_start"] = server.rss_mb()
        for task in args.tasks.split(","):
            rpc, request = ("Classify", classify) if task == "classification" else ("ExtractEntities", ner)
            figures["tasks"][task] = measure_task(server, rpc, request, args.rounds, args.seconds)
    finally:
        figures["rss_at_end"] = server.rss_mb()
        figures["server_exit_code"] = server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
