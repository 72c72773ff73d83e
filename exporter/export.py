"""Checkpoint → versioned model folder: ONNX export, quantization, re-measured quality, manifest.

Everything is written into a staging folder of the model store and published (checksummed, fsynced,
renamed, signed when given a key) only when complete; any failure removes the staging folder, so nothing
half-written loads. Staging folders that killed exports left behind are cleaned first.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import structlog

from tuneserve import data as datasets
from tuneserve import lineage, logs, signing
from tuneserve.checkpoint import CURVE, METRICS, TRAINING_RECORD
from tuneserve.cpu import DEFAULT_INT8_TARGET, Int8Target, host_int8_target
from tuneserve.encoding import encode_texts, encode_words, load_tokenizer, pretokenize
from tuneserve.evaluation import evaluate
from tuneserve.exporter import quantize as q
from tuneserve.inference import OnnxModel
from tuneserve.progress import Progress, ProgressFn, no_progress
from tuneserve.quality import primary_metric
from tuneserve.repository import Manifest, ModelVersion, QuantizationInfo, StoreConfig, open_store

log = structlog.get_logger(__name__)

FP32_FILE = "model.onnx"
_PACKAGES = (
    "tuneserve",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tokenizers",
)
_HF_TASK = {"classification": "text-classification", "ner": "token-classification"}


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    model_root: str | Path | StoreConfig  # a folder, s3://BUCKET/PREFIX, or a job's store settings
    name: str
    quantize: Literal["int8", "fp16", "none"] = "int8"
    int8_mode: Literal["dynamic", "static"] = "dynamic"
    tolerance: float = 1.0  # metric points (percent) int8 may lose against fp32 ONNX before fp32 is served
    validation: Path | None = None  # default: the validation file recorded at training time
    calibration_size: int = 256
    serve_if_first: bool = True
    staging_tag: str | None = None  # names the staging folder (see ModelStore.staging)
    threads: int = 0  # ONNX Runtime intra-op threads for the measurements (0: one per core)
    int8_target: Int8Target | Literal["auto"] = DEFAULT_INT8_TARGET  # CPUs the int8 file is made for
    signing_key: Path | None = None  # Ed25519 private key (PEM) to sign the version with


@dataclass(frozen=True)
class ExportResult:
    name: str
    version: int
    path: Path
    manifest: Manifest


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _read_examples(record: dict, path: Path) -> list:
    """Read data the way the training run recorded in ``record`` read it."""
    hyper = record["hyperparameters"]
    return datasets.read_examples(
        record["task"],
        path,
        text_column=hyper["text_column"],
        label_column=hyper["label_column"],
        multi_label=record["multi_label"],
    )


def _pretokenizer(record: dict) -> str:
    """How the checkpoint's NER words were cut; records from before the field: the data's own words."""
    return record.get("pretokenizer", "whitespace") if record["task"] == "ner" else "tokenizer"


class _Evaluator:
    """Measures an ONNX file of the staged folder on the validation data, as the server would run it."""

    def __init__(self, folder: Path, record: dict, validation: Path, threads: int = 0) -> None:
        self.folder, self.record, self.threads = folder, record, threads
        self.examples = _read_examples(record, validation)
        datasets.check_validation_labels(validation, self.examples, record["labels"])

    def __call__(self, onnx_file: str, providers: list[str] | None = None) -> dict[str, float]:
        r = self.record
        model = OnnxModel(
            self.folder, onnx_file, r["max_length"], providers=providers, intra_op_threads=self.threads
        )
        return evaluate(
            r["task"],
            model.logits,
            model.tokenizer,
            self.examples,
            r["labels"],
            multi_label=r["multi_label"],
            max_length=r["max_length"],
            pretokenizer=_pretokenizer(r),
        )


def measure_version(version: ModelVersion, validation: Path, threads: int = 0) -> dict[str, float]:
    """Metrics of a published version's served ONNX file on ``validation`` (text/label or tokens/tags JSON
    Lines, or any format ``read_examples`` reads with the default columns), through ONNX Runtime on CPU."""
    m = version.manifest
    examples = datasets.read_examples(m.task, validation, multi_label=m.multi_label)
    datasets.check_validation_labels(validation, examples, m.labels)
    model = OnnxModel(
        version.path, m.onnx_file, m.max_length, providers=["CPUExecutionProvider"], intra_op_threads=threads
    )
    return evaluate(
        m.task,
        model.logits,
        model.tokenizer,
        examples,
        m.labels,
        multi_label=m.multi_label,
        max_length=m.max_length,
        pretokenizer=m.pretokenizer,
    )


def _calibration_rows(folder: Path, record: dict, size: int):
    """A deterministic sample of the training texts, encoded as the server would."""
    tokenizer = load_tokenizer(folder, record["max_length"])
    examples = _read_examples(record, Path(record["train"]))
    step = max(1, len(examples) // size)
    if record["task"] == "ner":
        return [
            row
            for ex in pretokenize(tokenizer, examples[::step][:size], _pretokenizer(record))
            for row in encode_words(tokenizer, ex.tokens, record["max_length"])
        ]
    return encode_texts(tokenizer, [ex.text for ex in examples[::step][:size]])


def int8_rejection(
    fp32: dict[str, float], int8: dict[str, float], metric: str, tolerance: float
) -> str | None:
    """Why int8 must not be served (it lost more than ``tolerance`` points), or None."""
    loss = 100 * (fp32[metric] - int8[metric])
    if loss <= tolerance:
        return None
    return (
        f"int8 lost {loss:.2f} points of {metric} against fp32 ONNX (tolerance {tolerance:.2f}); serving fp32"
    )


BeforePublish = Callable[[Path, Manifest], None]


def export(
    config: ExportConfig, on_progress: ProgressFn = no_progress, before_publish: BeforePublish | None = None
) -> ExportResult:
    """Export, quantize, measure and publish one checkpoint as the next version of ``config.name``.

    ``before_publish(staged_folder, manifest)`` runs when the version is complete but not yet published
    (the Train RPC's quality gate); if it raises, nothing is published and the staging folder is removed.
    """
    from optimum.exporters.onnx import main_export

    logs.adopt_library_loggers()  # optimum's and transformers' warnings as log records
    started = time.monotonic()
    checkpoint = Path(config.checkpoint)
    record_path = checkpoint / TRAINING_RECORD
    if not record_path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a tuneserve checkpoint: {TRAINING_RECORD} is missing")
    record = json.loads(record_path.read_text())
    metric = primary_metric(record["task"], record["multi_label"])
    signer = signing.load_private_key(config.signing_key) if config.signing_key else None
    target: Int8Target = host_int8_target() if config.int8_target == "auto" else config.int8_target
    store = open_store(config.model_root)
    for leftover in store.clean():
        log.info("removed a dead writer's staging folder", path=str(leftover))
    with store.staging(config.name, config.staging_tag) as staged:
        on_progress(Progress("exporting", message="exporting to ONNX"))
        main_export(str(checkpoint), staged, task=_HF_TASK[record["task"]], local_files_only=True)
        for extra in (TRAINING_RECORD, METRICS, CURVE):
            if (checkpoint / extra).exists():
                shutil.copy2(checkpoint / extra, staged / extra)
        evaluate = _Evaluator(
            staged, record, Path(config.validation or record["validation"]), threads=config.threads
        )
        served, served_key, method, reason, providers = FP32_FILE, "onnx_fp32", "fp32 ONNX", None, None
        requested, variant = "none", None
        if config.quantize == "int8":
            requested = f"int8-{config.int8_mode}"
            on_progress(Progress("quantizing", message=requested))
            if config.int8_mode == "static":
                rows = _calibration_rows(staged, record, config.calibration_size)
                variant, method = q.quantize_static(staged, rows, target)
            else:
                variant, method = q.quantize_dynamic(staged, target)
        elif config.quantize == "fp16":
            requested = "fp16"
            on_progress(Progress("quantizing", message="fp16"))
            served, method = q.convert_fp16(staged)
            served_key = "onnx_fp16"
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]

        on_progress(Progress("validating", message="measuring fp32 ONNX"))
        metrics = {"torch": record["metrics"], "onnx_fp32": evaluate(FP32_FILE, ["CPUExecutionProvider"])}
        if variant is not None:
            on_progress(Progress("validating", message=f"measuring {requested} ONNX"))
            metrics["onnx_int8"] = evaluate(variant, ["CPUExecutionProvider"])
            reason = int8_rejection(metrics["onnx_fp32"], metrics["onnx_int8"], metric, config.tolerance)
            if reason:
                log.warning("int8 rejected", reason=reason)
                (staged / variant).unlink()
            else:
                served, served_key, providers = variant, "onnx_int8", ["CPUExecutionProvider"]
        elif served_key == "onnx_fp16":
            try:
                metrics["onnx_fp16"] = evaluate(served, providers)
            except Exception as exc:  # fp16 kernels are missing on some CPU builds; measured on GPU then
                log.warning("fp16 not measured here", error=str(exc).splitlines()[0])
        if served_key in metrics:
            metrics["served"] = metrics[served_key]
        manifest = Manifest(
            name=config.name,
            task=record["task"],
            multi_label=record["multi_label"],
            labels=record["labels"],
            max_length=record["max_length"],
            pretokenizer=_pretokenizer(record),  # served text is cut into the words trained on
            base_model=record["base_model"],
            onnx_file=served,
            quantization=QuantizationInfo(
                requested=requested,
                served="none" if served == FP32_FILE else requested,
                method=method if served != FP32_FILE else "fp32 ONNX",
                fallback_reason=reason,
                target=target if served == variant else None,
            ),
            providers=providers or ["CUDAExecutionProvider", "CPUExecutionProvider"],
            metrics=metrics,
            training={
                k: record[k]
                for k in (
                    "hyperparameters",
                    "best_epoch",
                    "device",
                    "precision",
                    "freeze",
                    "seconds",
                    "examples_per_second",
                )
                if k in record
            },
            package_versions=_versions(),
            lineage=lineage.from_record(record),  # with the search summary, when a search ran
        )
        if before_publish is not None:
            before_publish(staged, manifest)
        version = store.publish(
            config.name, staged, manifest, serve_if_first=config.serve_if_first, signing_key=signer
        )
    log.info(
        "exported",
        name=config.name,
        version=version,
        served=served,
        seconds=round(time.monotonic() - started, 1),
        **{f"{k}_{metric}": v.get(metric) for k, v in metrics.items()},
    )
    opened = store.open_version(config.name, version)
    return ExportResult(config.name, version, opened.path, opened.manifest)
