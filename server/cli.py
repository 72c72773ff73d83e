"""``tuneserve serve``: the click command (registered in ``tuneserve.cli`` with ``main.add_command(serve)``).

Every flag falls back to a ``TUNESERVE_*`` environment variable (shown in --help), then to the default of
``Settings``; nested settings use ``__``: ``--max-queue`` is ``TUNESERVE_BATCH__MAX_QUEUE``. Tokens
themselves are never flags (a command line is visible to every user of the machine): they come from files
or from ``TUNESERVE_AUTH__ADMIN_TOKENS`` / ``TUNESERVE_AUTH__READ_TOKENS``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from tuneserve.repository import StoreError
from tuneserve.server.settings import (
    AuthSettings,
    BatchSettings,
    ConfigError,
    KubernetesSettings,
    LimitSettings,
    Settings,
    TLSSettings,
    TrainingSettings,
)


class _Json(click.ParamType):
    """A JSON value (flags and variables that take a mapping or a list)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r} is not JSON: {exc}", param, ctx)


_FLOAT_MIN0 = click.FloatRange(min=0)
_JSON = _Json()
_FILE = click.Path(dir_okay=False, path_type=Path)
# flag, settings field ("section.field" for nested ones), click type
_OPTIONS: list[tuple[str, str, Any]] = [
    ("--model-root", "model_root", str),
    ("--cache-dir", "cache_dir", click.Path(file_okay=False, path_type=Path)),
    ("--cache-max-bytes", "cache_max_bytes", click.IntRange(min=0)),
    ("--host", "host", str),
    ("--port", "port", click.IntRange(0, 65535)),
    ("--metrics-host", "metrics_host", str),
    ("--http-port", "http_port", click.IntRange(0, 65535)),
    ("--metrics-port", "metrics_port", click.IntRange(0, 65535)),
    ("--device", "device", click.Choice(["auto", "cpu", "cuda"])),
    ("--intra-op-threads", "intra_op_threads", click.IntRange(min=0)),
    ("--idle-session/--no-idle-session", "idle_session", bool),
    ("--grace-period", "grace_period_s", _FLOAT_MIN0),
    ("--store-poll-interval", "store_poll_interval_s", _FLOAT_MIN0),
    ("--max-stream-in-flight", "max_stream_in_flight", click.IntRange(min=1)),
    ("--on-load-failure", "on_load_failure", click.Choice(["unavailable", "serve-previous"])),
    ("--strict-readiness/--no-strict-readiness", "strict_readiness", bool),
    ("--max-loaded-versions", "max_loaded_versions", click.IntRange(min=1)),
    ("--loaded-version-idle", "loaded_version_idle_s", _FLOAT_MIN0),
    ("--verify-key", "verify_key", _FILE),
    ("--max-concurrent-rpcs", "max_concurrent_rpcs", click.IntRange(min=0)),
    ("--max-batch-size", "batch.max_batch_size", click.IntRange(min=1)),
    ("--max-batch-tokens", "batch.max_batch_tokens", click.IntRange(min=1)),
    ("--max-wait-us", "batch.max_wait_us", click.IntRange(min=0)),
    ("--max-queue", "batch.max_queue", click.IntRange(min=1)),
    ("--max-queue-tokens", "batch.max_queue_tokens", click.IntRange(min=1)),
    ("--max-texts-per-request", "limits.max_texts_per_request", click.IntRange(min=1)),
    ("--max-text-bytes", "limits.max_text_bytes", click.IntRange(min=1)),
    ("--max-windows-per-request", "limits.max_windows_per_request", click.IntRange(min=1)),
    ("--max-message-bytes", "limits.max_message_bytes", click.IntRange(min=1024)),
    ("--training/--no-training", "training.enabled", bool),
    ("--jobs-dir", "training.jobs_dir", click.Path(file_okay=False, path_type=Path)),
    ("--data-root", "training.data_root", str),
    ("--max-running-jobs", "training.max_running", click.IntRange(1, 64)),
    ("--max-queued-jobs", "training.max_queued", click.IntRange(min=0)),
    ("--training-threads", "training.threads", click.IntRange(min=0)),
    ("--training-device", "training.device", click.Choice(["auto", "cpu", "cuda"])),
    ("--max-nproc-per-node", "training.max_nproc_per_node", click.IntRange(1, 64)),
    ("--keep-versions", "training.keep_versions", click.IntRange(min=0)),
    ("--minimum-metric", "training.minimum_metric", click.FloatRange(0, 1)),
    ("--training-signing-key", "training.signing_key", _FILE),
    ("--training-executor", "training.executor", click.Choice(["local", "kubernetes"])),
    ("--training-kubernetes-namespace", "training.kubernetes.namespace", str),
    ("--training-kubernetes-image", "training.kubernetes.image", str),
    (
        "--training-kubernetes-image-pull-policy",
        "training.kubernetes.image_pull_policy",
        click.Choice(["Always", "IfNotPresent", "Never"]),
    ),
    ("--training-kubernetes-service-account", "training.kubernetes.service_account", str),
    ("--training-kubernetes-cpu-request", "training.kubernetes.cpu_request", str),
    ("--training-kubernetes-cpu-limit", "training.kubernetes.cpu_limit", str),
    ("--training-kubernetes-memory-request", "training.kubernetes.memory_request", str),
    ("--training-kubernetes-memory-limit", "training.kubernetes.memory_limit", str),
    ("--training-kubernetes-gpus", "training.kubernetes.gpus", click.IntRange(0, 64)),
    (
        "--training-kubernetes-max-gpus-per-node",
        "training.kubernetes.max_gpus_per_node",
        click.IntRange(0, 64),
    ),
    ("--training-kubernetes-max-nnodes", "training.kubernetes.max_nnodes", click.IntRange(1, 64)),
    ("--training-kubernetes-node-selector", "training.kubernetes.node_selector", _JSON),
    ("--training-kubernetes-tolerations", "training.kubernetes.tolerations", _JSON),
    (
        "--training-kubernetes-ttl-seconds-after-finished",
        "training.kubernetes.ttl_seconds_after_finished",
        click.IntRange(min=0),
    ),
    ("--training-kubernetes-active-deadline", "training.kubernetes.active_deadline_s", click.IntRange(min=1)),
    ("--training-kubernetes-models-claim", "training.kubernetes.models_claim", str),
    ("--training-kubernetes-env", "training.kubernetes.env", _JSON),
    ("--training-kubernetes-env-secret", "training.kubernetes.env_secret", str),
    (
        "--training-kubernetes-unschedulable-timeout",
        "training.kubernetes.unschedulable_timeout_s",
        _FLOAT_MIN0,
    ),
    ("--report-to", "training.report_to", click.Choice(["none", "mlflow", "tensorboard"])),
    ("--tensorboard-dir", "training.tensorboard_dir", click.Path(file_okay=False, path_type=Path)),
    ("--admin-tokens-file", "auth.admin_tokens_file", _FILE),
    ("--read-tokens-file", "auth.read_tokens_file", _FILE),
    ("--auth-inference/--no-auth-inference", "auth.require_token_for_inference", bool),
    ("--tls-cert", "tls.cert_file", _FILE),
    ("--tls-key", "tls.key_file", _FILE),
    ("--tls-client-ca", "tls.client_ca_file", _FILE),
]
_SECTIONS: dict[str, type[BaseModel]] = {
    "batch": BatchSettings,
    "limits": LimitSettings,
    "training": TrainingSettings,
    "training.kubernetes": KubernetesSettings,
    "auth": AuthSettings,
    "tls": TLSSettings,
}


def _field(path: str) -> tuple[str | None, str, Any]:
    section, _, name = path.rpartition(".")
    model: type[BaseModel] = _SECTIONS[section] if section else Settings
    return section or None, name, model.model_fields[name]


def _option(flag: str, path: str, kind: Any) -> Callable[[Any], Any]:
    _, _, info = _field(path)
    env = "TUNESERVE_" + path.upper().replace(".", "__")
    default = info.get_default(call_default_factory=True)
    return click.option(
        flag,
        path.replace(".", "__"),
        type=kind,
        default=None,
        envvar=env,
        show_envvar=True,
        show_default=str(default),
        help=info.description or "",
    )


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    for flag, path, kind in reversed(_OPTIONS):
        f = _option(flag, path, kind)(f)
    return f


def build_settings(values: dict[str, Any]) -> Settings:
    """Settings from the command's values (None: not given on the command line)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        *sections, name = key.split("__")
        into = flat
        for section in sections:  # "training__kubernetes__image": flat["training"]["kubernetes"]["image"]
            into = into.setdefault(section, {})
        into[name] = value
    return Settings.load(**flat)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@_options
def serve(**values: Any) -> None:
    """Serve the models under the model root over gRPC (InferenceService, ModelService, health, reflection),
    the Open Inference Protocol over HTTP/REST, and Prometheus metrics on their own port. Port 0 picks a free
    port (the HTTP port: off); the bound ports are logged."""
    from tuneserve.server.app import serve as run_server

    try:
        settings = build_settings(values)
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc
    try:
        code = asyncio.run(run_server(settings))
    except (OSError, ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)
