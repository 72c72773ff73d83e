"""Quality benchmark: fine-tune the default base on SST-2 and CoNLL-2003, export fp32 and int8 ONNX, and
report test accuracy / entity F1 for PyTorch, ONNX fp32 and ONNX int8 (dynamic and static), with speed at
batch 1 and 32 and the batch-1 vs batch-32 quality of each variant. Figures go to a JSON file.

    python benchmarks/quality.py                          # the full recipe (tens of minutes on 2 cores)
    python benchmarks/quality.py --train-limit 4000 --tasks sst2   # a quick look
    python benchmarks/quality.py --keep DIR ...           # keep the checkpoints, then, without training:
    python benchmarks/quality.py --reuse DIR ...          # re-export and re-measure them (a new int8 recipe)

    python benchmarks/quality.py --trials 4 --seeds 1,2,3 --train-limit 400 --dev-limit 300 --test-limit 1000
                                                          # search vs the fixed defaults (no export)

With ``--trials N``, each task is trained per seed twice, on the same slices: once with the trainer's fixed
defaults and once with an N-trial search (``tuneserve.trainer.search``, the default space unless
``--search NAME=SPEC``); the figure is the test metric of each (PyTorch; ONNX fp32 equals it), with the mean
and spread over the seeds, and the wall time of each.

Data is read from ../shared/data (SST-2: train, dev selects the epoch, test = GLUE dev is the figure;
CoNLL-2003: train, dev, test = testb).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from tuneserve import data as datasets
from tuneserve.encoding import encode_texts, load_tokenizer
from tuneserve.evaluation import evaluate
from tuneserve.exporter.export import ExportConfig, export
from tuneserve.inference import OnnxModel
from tuneserve.trainer.train import TrainConfig, TrainResult, torch_logits_fn, train

REPO = Path(__file__).resolve().parent.parent
TASKS = {
    "sst2": dict(
        task="classification",
        dir="sst2",
        train="train.tsv",
        dev="dev.tsv",
        test="test.tsv",
        text_column="sentence",
        metric="accuracy",
    ),
    "conll": dict(
        task="ner", dir="conll2003", train="train.txt", dev="dev.txt", test="test.txt", metric="entity_f1"
    ),
}


def _subset(path: Path, spec: dict, limit: int | None, seed: int, work: Path) -> Path:
    """The first ``limit`` examples of a shuffled copy, written to ``work`` (never into the repo)."""
    if not limit:
        return path
    out = work / f"subset-{path.name}"
    if spec["task"] == "ner":
        text = (
            path.read_text(encoding="utf-8").replace("-DOCSTART- -X- -X- O", "").replace("-DOCSTART- O", "")
        )
        blocks = [b for b in text.split("\n\n") if b.strip()]
        random.Random(seed).shuffle(blocks)
        out.write_text("\n\n".join(blocks[:limit]) + "\n", encoding="utf-8")
    else:
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        random.Random(seed).shuffle(rows)
        out.write_text("\n".join([header, *rows[:limit]]) + "\n", encoding="utf-8")
    return out


def _read(path: Path, spec: dict):
    return datasets.read_examples(spec["task"], path, text_column=spec.get("text_column", "text"))


def _evaluate(logits_fn, tokenizer, examples, labels, spec: dict, max_length: int, batch: int) -> dict:
    return evaluate(
        spec["task"], logits_fn, tokenizer, examples, labels, max_length=max_length, batch_size=batch
    )


def _speed(model: OnnxModel, texts: list[str], batch: int, repeats: int = 3) -> float:
    """Milliseconds per item, best of ``repeats`` passes over ``texts`` in batches of ``batch``."""
    rows = encode_texts(model.tokenizer, texts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            model.logits(rows[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(rows)


def _kept(checkpoint: Path) -> TrainResult:
    """The training result recorded in a checkpoint folder (training.json, metrics.json)."""
    record = json.loads((checkpoint / "training.json").read_text())
    history = json.loads((checkpoint / "metrics.json").read_text())["history"]
    return TrainResult(
        output=checkpoint,
        task=record["task"],
        labels=record["labels"],
        metrics=record["metrics"],
        history=history,
        seconds=record["seconds"],
        examples_per_second=record["examples_per_second"],
    )


def run_task(name: str, args: argparse.Namespace, work: Path) -> dict:
    spec = TASKS[name]
    folder = Path(args.data) / spec["dir"]
    train_path = _subset(folder / spec["train"], spec, args.train_limit, args.seed, work)
    dev_path = _subset(folder / spec["dev"], spec, args.dev_limit, args.seed, work)
    test = _read(folder / spec["test"], spec)
    max_length = args.max_length or (64 if spec["task"] == "classification" else 128)
    epochs = args.epochs or (3 if spec["task"] == "classification" else 5)
    checkpoint = work / f"{name}-checkpoint"
    if args.reuse:  # a checkpoint kept by an earlier --keep run: re-export and re-measure only
        checkpoint = Path(args.reuse) / f"{name}-checkpoint"
        trained = _kept(checkpoint)
        epochs = trained.history[-1]["epoch"] if trained.history else epochs
    else:
        config = TrainConfig(
            task=spec["task"],
            train=train_path,
            validation=dev_path,
            output=checkpoint,
            epochs=epochs,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            max_length=max_length,
            seed=args.seed,
            text_column=spec.get("text_column", "text"),
            early_stopping_patience=2,
        )
        trained = train(config)
    result: dict = {
        "task": spec["task"],
        "checkpoint": "reused" if args.reuse else "trained",
        "epochs": epochs,
        "best_epoch": trained.history
        and max(trained.history, key=lambda h: h.get(spec["metric"], 0))["epoch"],
        "max_length": max_length,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "train_examples": len(_read(train_path, spec)),
        "train_seconds": round(trained.seconds, 1),
        "train_examples_per_second": round(trained.examples_per_second, 1),
        "dev": trained.metrics,
        "history": trained.history,
    }

    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if spec["task"] == "ner" else AutoModelForSequenceClassification
    model = auto.from_pretrained(checkpoint).eval()
    tokenizer = load_tokenizer(checkpoint, max_length)
    fn = torch_logits_fn(model, torch.device("cpu"), 0)
    result["torch"] = _evaluate(fn, tokenizer, test, trained.labels, spec, max_length, 32)

    texts = (
        [ex.text for ex in test] if spec["task"] == "classification" else [" ".join(ex.tokens) for ex in test]
    )
    texts = texts[: args.speed_items]
    store = work / "models"
    variants = {
        "onnx_fp32": ("none", "dynamic"),
        "onnx_int8_dynamic": ("int8", "dynamic"),
        "onnx_int8_static": ("int8", "static"),
    }
    for key, (quantize, mode) in variants.items():
        started = time.monotonic()
        exported = export(
            ExportConfig(
                checkpoint=checkpoint,
                model_root=store,
                name=f"{name}-{key}".replace("_", "-"),
                quantize=quantize,
                int8_mode=mode,
                tolerance=100,
            )
        )
        onnx = OnnxModel(exported.path, exported.manifest.onnx_file, max_length)
        result[key] = {
            "test_batch32": _evaluate(
                onnx.logits, onnx.tokenizer, test, trained.labels, spec, max_length, 32
            ),
            "test_batch1": _evaluate(onnx.logits, onnx.tokenizer, test, trained.labels, spec, max_length, 1),
            "ms_per_item_batch1": round(_speed(onnx, texts, 1), 3),
            "ms_per_item_batch32": round(_speed(onnx, texts, 32), 3),
            "export_seconds": round(time.monotonic() - started, 1),
            "method": exported.manifest.quantization.method,
        }
    metric = spec["metric"]
    fp32 = result["onnx_fp32"]
    for key in ("onnx_int8_dynamic", "onnx_int8_static"):
        r = result[key]
        r["points_vs_fp32"] = round(100 * (r["test_batch32"][metric] - fp32["test_batch32"][metric]), 2)
        r["speedup_vs_fp32_batch32"] = round(fp32["ms_per_item_batch32"] / r["ms_per_item_batch32"], 2)
        r["batch1_vs_batch32_points"] = round(100 * (r["test_batch1"][metric] - r["test_batch32"][metric]), 2)
    result["summary"] = {
        "metric": metric,
        "torch": round(100 * result["torch"][metric], 2),
        **{k: round(100 * result[k]["test_batch32"][metric], 2) for k in variants},
    }
    return result


def _test_metric(checkpoint: Path, spec: dict, test: list, labels: list[str], max_length: int) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if spec["task"] == "ner" else AutoModelForSequenceClassification
    model = auto.from_pretrained(checkpoint).eval()
    tokenizer = load_tokenizer(checkpoint, max_length)
    fn = torch_logits_fn(model, torch.device("cpu"), 0)
    return _evaluate(fn, tokenizer, test, labels, spec, max_length, 32)[spec["metric"]]


def _spread(values: list[float]) -> dict:
    import statistics

    return {
        "mean": round(statistics.mean(values), 2),
        "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def _recipe(baseline: str) -> dict:
    """The fixed recipe to compare with: the trainer's own defaults (``tuneserve train``), or the Train
    RPC's (``training.defaults``, chosen for small retraining sets)."""
    if baseline == "cli":
        return {}
    from tuneserve.server.settings import HyperparameterDefaults

    d = HyperparameterDefaults()
    return {
        "epochs": d.epochs,
        "learning_rate": d.learning_rate,
        "batch_size": d.batch_size,
        "weight_decay": d.weight_decay,
        "warmup_ratio": d.warmup_ratio,
        "early_stopping_patience": d.early_stopping_patience,
    }


def run_search_comparison(name: str, args: argparse.Namespace, work: Path) -> dict:
    """Fixed defaults vs an ``--trials`` search, per seed, on the same train/dev slices; test metric (%)."""
    from dataclasses import replace

    from tuneserve.searchspace import default_space, space
    from tuneserve.trainer.search import SearchConfig, search

    spec = TASKS[name]
    folder = Path(args.data) / spec["dir"]
    test = _read(folder / spec["test"], spec)
    if args.test_limit:
        test = random.Random(0).sample(test, min(args.test_limit, len(test)))
    max_length = args.max_length or 64
    how = SearchConfig(trials=args.trials, space=space(args.search) if args.search else default_space())
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train_path = _subset(folder / spec["train"], spec, args.train_limit, seed, work)
        dev_path = _subset(folder / spec["dev"], spec, args.dev_limit, seed, work)
        base = TrainConfig(
            task=spec["task"],
            train=train_path,
            validation=dev_path,
            output=work / f"{name}-{seed}-fixed",
            max_length=max_length,
            seed=seed,
            text_column=spec.get("text_column", "text"),
            progress_bar=False,
            **_recipe(args.baseline),
        )
        fixed = train(base)
        fixed_test = _test_metric(base.output, spec, test, fixed.labels, max_length)
        shutil.rmtree(base.output, ignore_errors=True)
        run = {
            "seed": seed,
            "fixed": {
                "test": round(100 * fixed_test, 2),
                "dev": fixed.metrics,
                "seconds": round(fixed.seconds, 1),
            },
        }
        if args.trials < 0:  # the baseline only
            runs.append(run)
            print(json.dumps({name: {"seed": seed, "fixed": run["fixed"]["test"]}}), flush=True)
            continue
        searched = search(replace(base, output=work / f"{name}-{seed}-search"), how)
        search_test = _test_metric(searched.result.output, spec, test, searched.result.labels, max_length)
        shutil.rmtree(searched.result.output, ignore_errors=True)
        run = {
            **run,
            "search": {
                "test": round(100 * search_test, 2),
                "dev": searched.result.metrics,
                "seconds": searched.summary["seconds"],
                "chosen": searched.summary["chosen"],
                "best_trial": searched.summary["best_trial"],
                "trials": [
                    {k: t.get(k) for k in ("number", "params", "state", "value", "seconds")}
                    for t in searched.summary["trials"]
                ],
            },
        }
        runs.append(run)
        print(
            json.dumps({name: {"seed": seed, "fixed": run["fixed"]["test"], "search": run["search"]["test"]}})
        )
    fixed_all = [r["fixed"]["test"] for r in runs]
    if args.trials < 0:
        return {
            "task": spec["task"],
            "metric": spec["metric"],
            "baseline": args.baseline,
            "recipe": _recipe(args.baseline),
            "runs": runs,
            "summary": {
                "fixed_defaults": _spread(fixed_all),
                "fixed_seconds_mean": round(sum(r["fixed"]["seconds"] for r in runs) / len(runs), 1),
            },
        }
    search_all = [r["search"]["test"] for r in runs]
    return {
        "task": spec["task"],
        "metric": spec["metric"],
        "train_examples": args.train_limit,
        "dev_examples": args.dev_limit,
        "test_examples": len(test),
        "max_length": max_length,
        "trials": args.trials,
        "space": {d.name: d.spec for d in how.space.values()},
        "runs": runs,
        "summary": {
            "fixed_defaults": _spread(fixed_all),
            "search": _spread(search_all),
            "gain_points": _spread([b - a for a, b in zip(fixed_all, search_all, strict=True)]),
            "fixed_seconds_mean": round(sum(r["fixed"]["seconds"] for r in runs) / len(runs), 1),
            "search_seconds_mean": round(sum(r["search"]["seconds"] for r in runs) / len(runs), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="sst2,conll")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--train-limit", type=int, default=None, help="train on this many examples")
    parser.add_argument("--dev-limit", type=int, default=2000, help="select epochs on this many dev examples")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--speed-items", type=int, default=512)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "quality.json"))
    parser.add_argument(
        "--reuse",
        default=None,
        help="skip training: re-export and re-measure the checkpoints that a --keep run left in this folder",
    )
    parser.add_argument(
        "--keep", default=None, help="keep checkpoints and exported models in this folder (default: discard)"
    )
    parser.add_argument("--trials", type=int, default=0, help="compare an N-trial search with the defaults")
    parser.add_argument("--search", action="append", default=[], help="NAME=SPEC (with --trials)")
    parser.add_argument("--seeds", default="1,2,3", help="with --trials: the seeds, comma-separated")
    parser.add_argument("--test-limit", type=int, default=None, help="with --trials: test on a sample")
    parser.add_argument(
        "--baseline",
        choices=["cli", "server"],
        default="cli",
        help="with --trials: the fixed recipe, tuneserve train's defaults or the Train RPC's (--trials -1: "
        "the baseline only)",
    )
    args = parser.parse_args()
    if args.trials:
        args.output = args.output.replace("quality.json", f"quality-search-{args.baseline}.json")
    report = {
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "args": vars(args),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tuneserve-bench-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.tasks.split(","):
            report[name] = (run_search_comparison if args.trials else run_task)(name, args, work)
            print(json.dumps({name: report[name]["summary"]}), flush=True)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
