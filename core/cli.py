"""The ``tuneserve`` command. Every flag also reads a TUNESERVE_* environment variable (shown in --help)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import ClassVar

import click

from tuneserve import logs


def _opt(*decls: str, env: str, **kwargs):
    """A click option with its TUNESERVE_* environment fallback shown in --help."""
    return click.option(*decls, envvar=f"TUNESERVE_{env}", show_envvar=True, show_default=True, **kwargs)


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


@main.command()
@_opt(
    "--task", env="TASK", required=True, type=click.Choice(["classification", "ner"]), help="What to learn."
)
@_opt(
    "--train",
    "train_path",
    env="TRAIN",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training data: TSV/CSV/JSONL (classification), CoNLL or JSONL (ner).",
)
@_opt(
    "--validation",
    env="VALIDATION",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Validation data, same format; selects the best epoch.",
)
@_opt(
    "--output",
    env="OUTPUT",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoint folder to write.",
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
def train(train_path: Path, **options) -> None:
    """Fine-tune a base encoder and write a checkpoint folder."""
    from tuneserve.trainer.data import DataError
    from tuneserve.trainer.train import BaseModelError, TrainConfig
    from tuneserve.trainer.train import train as run_train

    try:
        result = run_train(TrainConfig(train=train_path, **options))
    except (DataError, BaseModelError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {"output": str(result.output), "metrics": result.metrics, "seconds": round(result.seconds, 1)}
        )
    )


@main.command(name="export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_opt(
    "--model-root",
    env="MODEL_ROOT",
    default="models",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model store root.",
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
def export_cmd(checkpoint: Path, **options) -> None:
    """Export a checkpoint to ONNX, quantize, re-measure and publish it as a new model version."""
    from tuneserve.exporter.export import ExportConfig, export

    result = export(ExportConfig(checkpoint=checkpoint, **options))
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
    type=click.Path(file_okay=False, path_type=Path),
    help="Model store root.",
)
@_opt("--force", env="DEMO_FORCE", is_flag=True, default=False, help="Rebuild even if the models exist.")
def demo(model_root: Path, force: bool) -> None:
    """Build the default demo models (sentiment, ner) from the data shipped with tuneserve."""
    from tuneserve.trainer.demo import build_demo_models

    for line in build_demo_models(model_root, force=force):
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
