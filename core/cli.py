"""The ``tuneserve`` command. Every flag also reads a TUNESERVE_* environment variable (shown in --help)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import ClassVar

import click

from tuneserve import logs, remote
from tuneserve.searchspace import DEFAULT_SPACE


def _opt(*decls: str, env: str, **kwargs):
    """A click option with its TUNESERVE_* environment fallback shown in --help."""
    return click.option(*decls, envvar=f"TUNESERVE_{env}", show_envvar=True, show_default=True, **kwargs)


class StoreRoot(click.ParamType):
    """A model or data root: a local folder or s3://BUCKET/PREFIX. Another scheme (gs://, s3:/one-slash) is
    a usage error, never a local folder of that name."""

    name = "PATH|s3://BUCKET/PREFIX"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from tuneserve.repository import StoreError, parse_root

        try:
            return parse_root(str(value))
        except StoreError as exc:
            self.fail(str(exc), param, ctx)


STORE_ROOT = StoreRoot()


class DataFile(click.ParamType):
    """A data file: a local path, or s3://BUCKET/KEY (kept as the string)."""

    name = "FILE|s3://BUCKET/KEY"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        text = str(value)
        if text.startswith("s3://"):
            from tuneserve import objects

            try:
                objects.split_s3(text)
            except objects.ObjectError as exc:
                self.fail(str(exc), param, ctx)
            return text
        return Path(text)


DATA_FILE = DataFile()


class _LazyGroup(click.Group):
    """Loads commands that live with their component only when called, so ``tuneserve serve`` never
    imports the trainer (torch) and ``tuneserve train`` never imports the server (gRPC)."""

    lazy: ClassVar[dict[str, str]] = {"serve": "tuneserve.server.cli:serve"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@_opt(
    "--log-level",
    env="LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level.",
)
@_opt(
    "--log-format",
    env="LOG_FORMAT",
    default="auto",
    type=click.Choice(["auto", "json", "console"]),
    help="json: one JSON object per line; console: readable; auto: console on a terminal.",
)
def main(log_level: str, log_format: str) -> None:
    """Fine-tune transformer encoders, export quantized ONNX, serve classification and NER over gRPC."""
    logs.configure(log_level, log_format)


def _connection(f):
    """--server and how to reach it (token, TLS): the options of every command that talks to a server."""
    for decorator in reversed(
        [
            _opt(
                "--server",
                env="SERVER",
                default=remote.DEFAULT_SERVER,
                help="HOST:PORT of a tuneserve server.",
            ),
            click.option(
                "--token",
                envvar="TUNESERVE_TOKEN",
                show_envvar=True,
                default=None,
                help="Bearer token for servers that require one (prefer the environment variable).",
            ),
            _opt(
                "--ca-cert",
                env="CA_CERT",
                default=None,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Use TLS, trusting this CA certificate (PEM).",
            ),
            _opt(
                "--client-cert",
                env="CLIENT_CERT",
                default=None,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Client certificate for mutual TLS (PEM).",
            ),
            _opt(
                "--client-key",
                env="CLIENT_KEY",
                default=None,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Client private key for mutual TLS (PEM).",
            ),
        ]
    ):
        f = decorator(f)
    return f


def _connect(options: dict) -> remote.Connection:
    return remote.Connection(
        options.pop("server") or remote.DEFAULT_SERVER,
        token=options.pop("token"),
        ca_cert=options.pop("ca_cert"),
        client_cert=options.pop("client_cert"),
        client_key=options.pop("client_key"),
    )


def _watch(conn: remote.Connection, job_id: str, announce: str = "") -> int:
    """remote.watch (after ``announce`` on stderr), and on Ctrl-C: the job goes on; how to follow or
    cancel it."""
    try:
        if announce:
            click.echo(announce, err=True)
        return remote.watch(conn, job_id)
    except KeyboardInterrupt:
        at = f" --server {conn.server}"
        click.echo(
            f"\ninterrupted: job {job_id} goes on running on the server. Follow it: tuneserve jobs watch "
            f"{job_id}{at}; cancel it: tuneserve jobs cancel {job_id}{at}",
            err=True,
        )
        return 130


def _search_space(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict | None:
    """--search NAME=SPEC..., parsed and checked: a bad one is a usage error naming --search."""
    from tuneserve.searchspace import SpaceError, space

    try:
        return space(value) if value else None
    except SpaceError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _tracking_available(report_to: str | None) -> None:
    """Local training: --report-to's library must be installed (a usage error naming the flag)."""
    from tuneserve.tracking import TrackingUnavailable, check

    if report_to:
        try:
            check(report_to)
        except TrackingUnavailable as exc:
            raise click.BadParameter(str(exc), param_hint="'--report-to'") from exc


def _search_config(options: dict):
    """The SearchConfig of --trials/--search/...; None without --trials."""
    from tuneserve.searchspace import default_space
    from tuneserve.trainer.search import SearchConfig

    if options["search_specs"] and not options["trials"]:
        raise click.UsageError("--search needs --trials N (N >= 1)")
    if options["search_timeout"] is not None and not options["trials"]:
        raise click.UsageError("--search-timeout needs --trials N (N >= 1)")
    if not options["trials"]:
        return None
    return SearchConfig(
        trials=options["trials"],
        space=options["search_specs"] or default_space(),
        timeout_s=options["search_timeout"],
        prune=options["prune"],
    )


@main.command()
@_opt(
    "--task",
    env="TASK",
    default=None,
    type=click.Choice(["classification", "ner"]),
    help="What to learn (required, except when retraining an existing model on a server).",
)
@_opt(
    "--train",
    "train_path",
    env="TRAIN",
    default=None,
    type=DATA_FILE,
    help="Training data: TSV/CSV/JSONL (classification), CoNLL or JSONL (ner). With --server: sent inline.",
)
@_opt(
    "--validation",
    env="VALIDATION",
    default=None,
    type=DATA_FILE,
    help="Validation data, same format; selects the best epoch (with --server: optional, the server "
    "holds out part of the training data).",
)
@_opt(
    "--output",
    env="OUTPUT",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoint folder to write (local training).",
)
@_opt(
    "--base",
    env="BASE",
    default=None,
    help="Base model: a local folder or hub id [default: packaged all-MiniLM-L6-v2].",
)
@_opt(
    "--epochs",
    env="EPOCHS",
    default=3.0,
    type=click.FloatRange(min=0, min_open=True),
    help="Training epochs.",
)
@_opt(
    "--learning-rate",
    env="LEARNING_RATE",
    default=5e-5,
    type=click.FloatRange(min=0, min_open=True),
    help="Peak learning rate (AdamW, linear warmup and decay).",
)
@_opt("--batch-size", env="BATCH_SIZE", default=32, type=click.IntRange(min=1), help="Examples per step.")
@_opt(
    "--max-length",
    env="MAX_LENGTH",
    default=128,
    type=click.IntRange(min=8, max=8192),
    help="Maximum tokens per input.",
)
@_opt("--seed", env="SEED", default=42, type=int, help="Random seed; same seed, same machine, same metrics.")
@_opt(
    "--weight-decay",
    env="WEIGHT_DECAY",
    default=0.01,
    type=click.FloatRange(min=0),
    help="AdamW weight decay.",
)
@_opt(
    "--warmup-ratio",
    env="WARMUP_RATIO",
    default=0.1,
    type=click.FloatRange(0, 1),
    help="Share of steps warming up.",
)
@_opt(
    "--gradient-accumulation",
    env="GRADIENT_ACCUMULATION",
    default=1,
    type=click.IntRange(min=1),
    help="Batches accumulated per optimizer step.",
)
@_opt(
    "--early-stopping-patience",
    env="EARLY_STOPPING_PATIENCE",
    default=2,
    type=click.IntRange(min=0),
    help="Stop after this many epochs without improvement (0: never).",
)
@_opt(
    "--freeze",
    env="FREEZE",
    default="none",
    help="none, encoder (train the head only) or N (bottom N layers).",
)
@_opt(
    "--multi-label",
    env="MULTI_LABEL",
    is_flag=True,
    default=False,
    help="Classification with several labels per text.",
)
@_opt("--text-column", env="TEXT_COLUMN", default="text", help="Text column (classification).")
@_opt("--label-column", env="LABEL_COLUMN", default="label", help="Label column (classification).")
@_opt(
    "--device",
    env="DEVICE",
    default="auto",
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="auto: CUDA with mixed precision when present, else CPU.",
)
@_opt(
    "--pretokenizer",
    env="PRETOKENIZER",
    default="tokenizer",
    type=click.Choice(["tokenizer", "whitespace"]),
    help="NER words, in training and serving: tokenizer (cut at punctuation too, as raw text is: "
    "@user → @ user) or whitespace (the data's words as they are, for served text pre-tokenized alike).",
)
@_opt(
    "--nproc-per-node",
    env="NPROC_PER_NODE",
    default=1,
    type=click.IntRange(min=1),
    help="Training processes on this host (DDP through torchrun: gloo on CPU, NCCL with one GPU each); "
    "--batch-size is per process. With --server: asked of the server, which may bound it.",
)
@_opt(
    "--nnodes",
    env="NNODES",
    default=1,
    type=click.IntRange(min=1),
    help="Hosts training together (each runs this command with its --node-rank). With --server: asked of "
    "the server (nodes of a Kubernetes Job, with --training-executor kubernetes).",
)
@_opt("--node-rank", env="NODE_RANK", default=0, type=click.IntRange(min=0), help="This host's index.")
@_opt(
    "--rdzv-endpoint",
    env="RDZV_ENDPOINT",
    default=None,
    help="HOST:PORT on node 0 where the hosts meet (needed with --nnodes > 1).",
)
@_opt(
    "--trials",
    env="TRIALS",
    default=0,
    type=click.IntRange(0, 1000),
    help="Hyperparameter search: this many trials (Optuna TPE), the best one kept [0: no search].",
)
@_opt(
    "--search",
    "search_specs",
    env="SEARCH",
    multiple=True,
    callback=_search_space,
    help="NAME=SPEC, repeatable: what --trials varies. SPEC is LOW:HIGH, LOW:HIGH:log or A|B|C; NAME is "
    "learning_rate, epochs, batch_size, weight_decay, warmup_ratio or freeze "
    f"[default with --trials: {' '.join(f'{k}={v}' for k, v in DEFAULT_SPACE.items())}].",
)
@_opt(
    "--search-timeout",
    env="SEARCH_TIMEOUT",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of search: no trial starts after them [default: no limit].",
)
@_opt(
    "--prune/--no-prune",
    env="PRUNE",
    default=True,
    help="Stop a trial early when an epoch's validation metric is below the median of earlier trials.",
)
@_opt(
    "--keep-best-on-cancel",
    env="KEEP_BEST_ON_CANCEL",
    is_flag=True,
    default=False,
    help="With --server: a cancelled search still exports and gates its best finished trial.",
)
@_opt(
    "--report-to",
    env="REPORT_TO",
    default=None,
    type=click.Choice(["none", "mlflow", "tensorboard"]),
    help="Experiment tracking (the tracking extra): mlflow (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME) or "
    "tensorboard (locally under OUTPUT/runs) [default: none; with --server: the server's].",
)
@_connection
@_opt("--model", env="MODEL", default=None, help="With --server: the model to train a new version of.")
@_opt("--train-uri", env="TRAIN_URI", default=None, help="With --server: training data under its data root.")
@_opt(
    "--validation-uri",
    env="VALIDATION_URI",
    default=None,
    help="With --server: validation data under its data root.",
)
@_opt(
    "--quantization",
    env="QUANTIZATION",
    default=None,
    type=click.Choice(["int8-dynamic", "int8-static", "fp16", "none"]),
    help="With --server: quantization of the new version [default: the server's].",
)
@_opt(
    "--promotion-policy",
    env="PROMOTION_POLICY",
    default="promote-if-better",
    type=click.Choice(["promote-if-better", "register-only"]),
    help="With --server: promote a version that passes the gate, or only register it.",
)
@_opt(
    "--promotion-tolerance",
    env="PROMOTION_TOLERANCE",
    default=0.0,
    type=click.FloatRange(min=0),
    help="With --server: how much worse (a fraction, 0.01 = 1 point) than the serving version may pass.",
)
@_opt(
    "--minimum-metric",
    env="MINIMUM_METRIC",
    default=None,
    type=click.FloatRange(0, 1),
    help="With --server: the gate also needs the primary metric to reach this fraction.",
)
@_opt(
    "--replace-labels",
    env="REPLACE_LABELS",
    is_flag=True,
    default=False,
    help="With --server: allow a label set that differs from the serving version's (refused otherwise).",
)
@_opt(
    "--watch", env="WATCH", is_flag=True, default=False, help="With --server: follow the job until it ends."
)
@click.pass_context
def train(ctx: click.Context, train_path: Path | None, **options) -> None:
    """Fine-tune a base encoder and write a checkpoint folder; with --server or --model, queue a training
    job on a server instead (local data files are sent inline) and print it, or follow it with --watch."""
    if _given(ctx, "server") or options["model"]:
        if _given(ctx, "pretokenizer"):
            raise click.UsageError("--pretokenizer is for local training; a server trains with 'tokenizer'")
        sys.exit(_train_remote(ctx, train_path, options))
    for flag, value in (
        ("--task", options["task"]),
        ("--train", train_path),
        ("--validation", options["validation"]),
        ("--output", options["output"]),
    ):
        if value is None:
            raise click.UsageError(f"{flag} is required to train locally (or give --server)")
    for remote_only in ("train_uri", "validation_uri", "quantization", "minimum_metric"):
        if options[remote_only] is not None:
            raise click.UsageError(f"--{remote_only.replace('_', '-')} needs --server")
    if options["replace_labels"]:
        raise click.UsageError("--replace-labels needs --server")
    if options["keep_best_on_cancel"]:
        raise click.UsageError("--keep-best-on-cancel needs --server (a local search stops on Ctrl-C)")
    how_search = _search_config(options)
    _tracking_available(options["report_to"])
    local = {k: v for k, v in options.items() if k in _LOCAL_TRAIN_OPTIONS}
    from tuneserve.trainer.launch import Launch, RankFailed, launch

    how = Launch(
        nproc_per_node=options["nproc_per_node"],
        nnodes=options["nnodes"],
        node_rank=options["node_rank"],
        rdzv_endpoint=options["rdzv_endpoint"],
    )
    try:
        how.check()  # before importing torch: a wrong launch fails at once
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    from tuneserve import objects
    from tuneserve.data import DataError
    from tuneserve.trainer import search, tracking
    from tuneserve.trainer.train import BaseModelError, TrainConfig
    from tuneserve.trainer.train import train as run_train

    def train_fn(config, on_progress, should_cancel):
        if how.distributed:
            return launch(config, how, on_progress=on_progress, should_cancel=should_cancel)
        return run_train(config, on_progress=on_progress, should_cancel=should_cancel)

    report_to = options["report_to"] or "none"
    try:
        # Data in object storage is copied beside the checkpoint: export re-measures on the validation file.
        fetched = Path(local["output"]) / "data"
        train_path, local["validation"] = (
            objects.download(p, fetched) if objects.is_s3(p) else p for p in (train_path, local["validation"])
        )
        config = TrainConfig(train=train_path, **local)
        if how_search is None and report_to == "none":
            result = train_fn(config, lambda _: None, lambda: False)
            summary: dict = {}
        else:
            if how.distributed and how.node_rank != 0:
                raise click.UsageError("--trials and --report-to run on node 0 only (--node-rank 0)")
            tracker = tracking.open_tracker(report_to, Path(local["output"]) / "runs")
            outcome = search.run(
                config, how_search, tracker, name=f"train-{Path(local['output']).name}", train_fn=train_fn
            )
            result, summary = outcome.result, outcome.summary
    except objects.ObjectError as exc:
        raise click.ClickException(str(exc)) from exc
    except (DataError, BaseModelError, ValueError, RankFailed, search.SearchFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    if result is None:  # a node without rank 0: rank 0's node prints the result
        return
    line = {"output": str(result.output), "metrics": result.metrics, "seconds": round(result.seconds, 1)}
    if summary:
        click.echo(
            remote.trials_table(summary["trials"], summary["best_trial"], summary["objective"]), err=True
        )
        line["search"] = {
            k: summary[k] for k in ("best_trial", "objective", "best_value", "chosen", "stopped")
        }
        line["seconds"] = summary["seconds"]
    click.echo(json.dumps(line))


@main.command(name="export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_opt(
    "--model-root",
    env="MODEL_ROOT",
    default="models",
    type=STORE_ROOT,
    help="Model store root: a folder or s3://BUCKET/PREFIX (AWS_* variables, profiles, web identity).",
)
@_opt("--name", env="NAME", required=True, help="Model name in the store.")
@_opt(
    "--quantize",
    env="QUANTIZE",
    default="int8",
    type=click.Choice(["int8", "fp16", "none"]),
    help="int8 for CPU serving, fp16 for GPU, none for fp32.",
)
@_opt(
    "--int8-mode",
    env="INT8_MODE",
    default="dynamic",
    type=click.Choice(["dynamic", "static"]),
    help="dynamic: scales per batch; static: scales calibrated on training data (batch-invariant).",
)
@_opt(
    "--tolerance",
    env="TOLERANCE",
    default=1.0,
    type=click.FloatRange(min=0),
    help="Points of the primary metric int8 may lose against fp32 ONNX before fp32 is served instead.",
)
@_opt(
    "--validation",
    env="EXPORT_VALIDATION",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Validation data to re-measure on [default: the one used in training].",
)
@_opt(
    "--int8-target",
    env="INT8_TARGET",
    default="avx2",
    type=click.Choice(["auto", "avx2", "avx512", "avx512-vnni", "arm64"]),
    help="CPUs the int8 file is made for (auto: this one). avx2 runs without saturation on any x86-64; "
    "avx512-vnni is faster on VNNI CPUs but can lose accuracy on others.",
)
@_opt(
    "--signing-key",
    env="SIGNING_KEY",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key (PEM) to sign the version with, for servers run with --verify-key.",
)
def export_cmd(checkpoint: Path, **options) -> None:
    """Export a checkpoint to ONNX, quantize, re-measure and publish it as a new model version."""
    from tuneserve.exporter.export import ExportConfig, export
    from tuneserve.signing import SigningError

    try:
        result = export(ExportConfig(checkpoint=checkpoint, **options))
    except SigningError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a full disk, a read-only store, a permission: the export left nothing behind
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(
            f"export failed: {exc.strerror or exc}{where}; nothing was published (free space or fix the "
            "model root, then export again)"
        ) from exc
    m = result.manifest
    click.echo(
        json.dumps(
            {
                "name": m.name,
                "version": m.version,
                "path": str(result.path),
                "onnx_file": m.onnx_file,
                "quantization": m.quantization.model_dump(),
                "metrics": m.metrics,
            }
        )
    )


@main.command()
@_opt(
    "--model-root",
    env="MODEL_ROOT",
    default="models",
    type=STORE_ROOT,
    help="Model store root: a folder or s3://BUCKET/PREFIX (AWS_* variables, profiles, web identity).",
)
@_opt("--force", env="DEMO_FORCE", is_flag=True, default=False, help="Rebuild even if the models exist.")
@_opt(
    "--base",
    env="DEMO_BASE",
    default=None,
    help="Base model folder [default: the packaged all-MiniLM-L6-v2].",
)
def demo(model_root: str, force: bool, base: str | None) -> None:
    """Build the default demo models (sentiment, ner) from the data shipped with tuneserve.

    Logs each step (which model; training epoch k/n, export, quantize, measure) on stderr and prints one
    line per model on stdout.
    """
    from tuneserve.pipeline.demo import build_demo_models

    for line in build_demo_models(model_root, force=force, base=base):
        click.echo(line)


@main.command()
@_opt(
    "--model-root",
    env="MODEL_ROOT",
    default="models",
    type=STORE_ROOT,
    help="Model store root: a folder or s3://BUCKET/PREFIX.",
)
@_opt("--name", env="NAME", default=None, help="Only this model [default: every model in the store].")
@_opt(
    "--signing-key",
    env="SIGNING_KEY",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key (PEM): also sign the versions sealed, for servers run with --verify-key.",
)
def seal(model_root: str, name: str | None, signing_key: Path | None) -> None:
    """Cover the manifests of versions published by an older tuneserve with a digest (manifest.sha256).

    Servers refuse versions whose manifest no digest covers. This checks every file of such a version
    against its manifest and records the manifest's digest, trusting the manifest as it stands: review
    its labels first. Prints one JSON line per version without a digest; exits 1 if any could not be sealed
    (a file does not match its manifest: export that version again, or delete it).
    """
    from tuneserve.repository import StoreError, open_store
    from tuneserve.signing import SigningError, load_private_key

    try:
        key = load_private_key(signing_key) if signing_key else None
        results = open_store(model_root).seal(name, key)
    except (StoreError, SigningError, OSError) as exc:
        raise click.ClickException(f"seal failed: {exc}") from exc
    for model, version, error in results:
        line = {"name": model, "version": version, "sealed": not error}
        click.echo(json.dumps({**line, "error": error} if error else line))
    if any(error for *_, error in results):
        raise click.ClickException("some versions were not sealed: their files do not match their manifest")


# ---------------------------------------------------------------- a remote server: train, jobs, models

_LOCAL_TRAIN_OPTIONS = frozenset(
    {
        *("task", "validation", "output", "base", "epochs", "learning_rate", "batch_size", "max_length"),
        *("seed", "weight_decay", "warmup_ratio", "gradient_accumulation", "early_stopping_patience"),
        *("freeze", "multi_label", "text_column", "label_column", "device", "pretokenizer"),
    }
)
# train flag -> Hyperparameters field (sent only when given on the command line or in the environment)
_HYPERPARAMETERS = {
    "epochs": "epochs",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "seed": "seed",
    "weight_decay": "weight_decay",
    "warmup_ratio": "warmup_ratio",
    "gradient_accumulation": "gradient_accumulation_steps",
    "early_stopping_patience": "early_stopping_patience",
    "freeze": "freeze",
}
_TASKS = {"classification": "TASK_CLASSIFICATION", "ner": "TASK_TOKEN_CLASSIFICATION"}  # tuneserve.v1.Task
_JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"]


def enum_value(enum: str, choice: str | None) -> int:
    """The number of the generated proto enum ``enum`` (e.g. ``Quantization``) for a CLI choice, by name
    (``int8-dynamic``: ``QUANTIZATION_INT8_DYNAMIC``); 0 (unspecified) for no choice."""
    from tuneserve.v1 import common_pb2, training_pb2

    if not choice:
        return 0
    if enum == "Task":
        return common_pb2.Task.Value(_TASKS[choice])
    kind = getattr(common_pb2, enum, None) or getattr(training_pb2, enum)
    prefix = {"JobState": "JOB_STATE", "PromotionPolicy": "PROMOTION_POLICY", "ReportTo": "REPORT_TO"}.get(
        enum, enum.upper()
    )
    return kind.Value(f"{prefix}_{choice.upper().replace('-', '_')}")


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def _train_remote(ctx: click.Context, train_path: Path | None, options: dict) -> int:
    from tuneserve.v1 import training_pb2

    conn = _connect(options)
    if not options["model"]:
        raise click.UsageError("--model is required with --server")
    for flag in ("node_rank", "rdzv_endpoint"):
        if _given(ctx, flag):
            raise click.UsageError(
                f"--{flag.replace('_', '-')} is for local training; a server places the nodes of its jobs"
            )
    if options["output"] is not None:
        raise click.UsageError("--output is for local training; the server keeps the new version")
    task = options["task"]
    if task is None and (train_path or options["validation"]):
        task = _model_task(conn, options["model"])
    columns = {"text_column": options["text_column"], "label_column": options["label_column"]}
    columns["multi_label"] = options["multi_label"]
    train_data = remote.dataset(task, train_path, options["train_uri"], "train", dict(columns))
    if train_data is None:
        raise click.UsageError("--train FILE or --train-uri PATH is required")
    validation = remote.dataset(
        task, options["validation"], options["validation_uri"], "validation", dict(columns)
    )
    hyper = training_pb2.Hyperparameters()
    for flag, field in _HYPERPARAMETERS.items():
        if _given(ctx, flag):
            value = options[flag]
            if flag == "epochs":
                if value != int(value):
                    raise click.UsageError("--epochs must be a whole number with --server")
                value = int(value)
            setattr(hyper, field, value)
    request = training_pb2.TrainRequest(
        model=options["model"],
        task=enum_value("Task", task),
        base_model=options["base"] or "",
        training_data=train_data,
        validation_data=validation,
        hyperparameters=hyper,
        quantization=enum_value("Quantization", options["quantization"]),
        promotion_policy=enum_value("PromotionPolicy", options["promotion_policy"]),
        promotion_tolerance=options["promotion_tolerance"],
        minimum_metric=options["minimum_metric"],
        multi_label=options["multi_label"],
        replace_labels=options["replace_labels"],
        nproc_per_node=options["nproc_per_node"] if _given(ctx, "nproc_per_node") else 0,
        nnodes=options["nnodes"] if _given(ctx, "nnodes") else 0,
    )
    how_search = _search_config(options)
    if how_search is not None:
        request.search.trials = how_search.trials
        request.search.timeout_seconds = how_search.timeout_s or 0.0
        request.search.prune = how_search.prune
        request.search.keep_best_on_cancel = options["keep_best_on_cancel"]
        if options["search_specs"]:  # else the server's default space
            for dim in how_search.space.values():
                request.search.space.add(
                    name=dim.name,
                    low=dim.low or 0.0,
                    high=dim.high or 0.0,
                    log=dim.log,
                    choices=[str(c) for c in dim.choices],
                )
    elif options["keep_best_on_cancel"]:
        raise click.UsageError("--keep-best-on-cancel needs --trials N")
    if options["report_to"]:
        request.report_to = enum_value("ReportTo", options["report_to"])
    if options["train_uri"] or options["validation_uri"]:
        if _given(ctx, "text_column"):
            request.text_column = options["text_column"]
        if _given(ctx, "label_column"):
            request.label_column = options["label_column"]
    job = remote.call(conn, "training", "Train", request).job
    if not options["watch"]:
        remote.echo(job)
        return 0
    return _watch(conn, job.id, f"job {job.id} queued for model {job.model}")


def _model_task(conn: remote.Connection, name: str) -> str:
    """The task of an existing model on the server (to read local data files the way it needs)."""
    from tuneserve.v1 import model_pb2

    model = remote.call(conn, "models", "GetModel", model_pb2.GetModelRequest(name=name)).model
    return {enum_value("Task", k): k for k in _TASKS}[model.task]


@main.command()
@click.argument("texts", nargs=-1)
@_opt("--model", env="MODEL", required=True, help="Model to ask (its serving version, unless --version).")
@_connection
@_opt("--version", env="MODEL_VERSION", default=0, type=click.IntRange(min=0), help="Version [0: serving].")
@_opt("--top-k", env="TOP_K", default=0, type=click.IntRange(min=0), help="Classification: labels [0: all].")
@_opt(
    "--aggregation",
    env="AGGREGATION",
    default="first",
    type=click.Choice(["simple", "first", "average", "max"]),
    help="Entities: how sub-tokens make words.",
)
@_opt(
    "--min-score",
    env="MIN_SCORE",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Entities: drop those scored lower.",
)
@_opt(
    "--texts-per-call",
    env="TEXTS_PER_CALL",
    default=32,
    type=click.IntRange(min=1),
    help="Texts sent in one call (stdin is read this many lines at a time; 1 on a terminal).",
)
def predict(texts: tuple[str, ...], model: str, version: int, texts_per_call: int, **options) -> None:
    """Ask a server's model about TEXTS (or, with none, each non-blank line of stdin): one JSON object per
    text and line on stdout, in order: {"text", "model", "version", "labels": [{"label", "score"}],
    "truncated"} for a classification model, "entities": [{"label", "text", "start", "end", "score"}]
    (code point offsets) for an NER one."""
    conn = _connect(options)
    lines = texts or (line.rstrip("\r\n") for line in sys.stdin if line.strip())
    if not texts and sys.stdin.isatty():
        texts_per_call = 1  # typed lines: answer each at once
    answers = remote.predict(conn, model, lines, version=version, per_call=texts_per_call, **options)
    for answer in answers:
        click.echo(json.dumps(answer, ensure_ascii=False))


@main.group()
def jobs() -> None:
    """Training jobs on a server: list, get, watch, cancel."""


@jobs.command(name="list")
@_connection
@_opt("--model", env="MODEL", default="", help="Only jobs of this model.")
@_opt(
    "--state", env="JOB_STATE", default=None, type=click.Choice(_JOB_STATES), help="Only jobs in this state."
)
@_opt(
    "--page-size",
    env="PAGE_SIZE",
    default=0,
    type=click.IntRange(min=0),
    help="Jobs per page [0: the server's default].",
)
@_opt("--page-token", env="PAGE_TOKEN", default="", help="next_page_token of the previous page.")
def jobs_list(model: str, state: str | None, page_size: int, page_token: str, **conn) -> None:
    """List jobs, newest first: one JSON object, {"jobs": [...], "next_page_token": "..."} ("" on the
    last page); with no job, "no jobs" on stderr too."""
    from tuneserve.v1 import training_pb2

    request = training_pb2.ListTrainingJobsRequest(
        model=model,
        state=enum_value("JobState", state),
        page_size=page_size,
        page_token=page_token,
    )
    page = remote.call(_connect(conn), "training", "ListTrainingJobs", request)
    click.echo(
        json.dumps({"jobs": [remote.as_dict(j) for j in page.jobs], "next_page_token": page.next_page_token})
    )
    if not page.jobs:
        scope = " ".join(f"{k}={v}" for k, v in (("model", model), ("state", state)) if v)
        click.echo(f"no jobs{' with ' + scope if scope else ''}", err=True)


@jobs.command(name="get")
@click.argument("job_id")
@_connection
def jobs_get(job_id: str, **conn) -> None:
    """Print a job."""
    from tuneserve.v1 import training_pb2

    request = training_pb2.GetTrainingJobRequest(job_id=job_id)
    job = remote.call(_connect(conn), "training", "GetTrainingJob", request).job
    remote.echo(job)
    if table := remote.job_trials_table(job):  # a search's trials, for people (stdout stays one JSON)
        click.echo(table, err=True)


@jobs.command(name="watch")
@click.argument("job_id")
@_connection
def jobs_watch(job_id: str, **conn) -> None:
    """Follow a job with a progress bar; print it when it ends; exit 1 unless it succeeded."""
    sys.exit(_watch(_connect(conn), job_id))


@jobs.command(name="cancel")
@click.argument("job_id")
@_connection
def jobs_cancel(job_id: str, **conn) -> None:
    """Ask a queued or running job to stop; print the job."""
    from tuneserve.v1 import training_pb2

    request = training_pb2.CancelTrainingJobRequest(job_id=job_id)
    remote.echo(remote.call(_connect(conn), "training", "CancelTrainingJob", request).job)


@main.group()
def models() -> None:
    """Models on a server: list, get, promote, rollback, delete."""


@models.command(name="list")
@_connection
def models_list(**conn) -> None:
    """List models with their versions (every page)."""
    from tuneserve.v1 import model_pb2

    connection, found, token = _connect(conn), [], ""
    while True:
        page = remote.call(connection, "models", "ListModels", model_pb2.ListModelsRequest(page_token=token))
        found.extend(remote.as_dict(m) for m in page.models)
        token = page.next_page_token
        if not token:
            break
    click.echo(json.dumps({"models": found}))


@models.command(name="get")
@click.argument("name")
@_opt(
    "--output",
    env="MODELS_OUTPUT",
    default="json",
    type=click.Choice(["json", "text"]),
    help="json: one JSON object (the GetModel reply); text: readable, with each version's lineage.",
)
@_connection
def models_get(name: str, output: str, **conn) -> None:
    """Print a model with its versions, each with its lineage (what it was trained from)."""
    from tuneserve.v1 import model_pb2

    model = remote.call(_connect(conn), "models", "GetModel", model_pb2.GetModelRequest(name=name)).model
    if output == "text":
        from tuneserve.modelview import render_model

        click.echo(render_model(remote.as_dict(model)))
    else:
        remote.echo(model)


@models.command(name="promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@_connection
def models_promote(name: str, version: int, **conn) -> None:
    """Make VERSION the serving version (loaded and warmed before it serves)."""
    from tuneserve.v1 import model_pb2

    request = model_pb2.SetServingVersionRequest(name=name, version=version)
    remote.echo(remote.call(_connect(conn), "models", "SetServingVersion", request).model)


@models.command(name="rollback")
@click.argument("name")
@_opt(
    "--to",
    "version",
    env="ROLLBACK_TO",
    type=click.IntRange(min=1),
    default=None,
    help="Version to serve [default: the newest kept version older than the serving one].",
)
@_connection
def models_rollback(name: str, version: int | None, **conn) -> None:
    """Serve an older version again."""
    from tuneserve.v1 import model_pb2

    connection = _connect(conn)
    if version is None:
        model = remote.call(connection, "models", "GetModel", model_pb2.GetModelRequest(name=name)).model
        older = [v.version for v in model.versions if v.version < model.serving_version]
        if not older:
            raise click.ClickException(
                f"model {name!r} has no kept version older than its serving version {model.serving_version}"
            )
        version = max(older)
    request = model_pb2.SetServingVersionRequest(name=name, version=version)
    remote.echo(remote.call(connection, "models", "SetServingVersion", request).model)


@models.command(name="delete")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@_connection
def models_delete(name: str, version: int, **conn) -> None:
    """Delete a version that is not serving."""
    from tuneserve.v1 import model_pb2

    request = model_pb2.DeleteModelVersionRequest(name=name, version=version)
    remote.call(_connect(conn), "models", "DeleteModelVersion", request)
    click.echo(json.dumps({"name": name, "deleted_version": version}))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
