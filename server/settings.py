"""The server's typed configuration: the only module that reads the environment.

Precedence is CLI flag, then ``TUNESERVE_*`` environment variable, then the default here. Nested settings
use ``__`` in the environment: ``TUNESERVE_BATCH__MAX_WAIT_US=500``,
``TUNESERVE_LIMITS__MAX_TEXT_BYTES=1000``.
The object is validated once, frozen, and passed explicitly to whatever needs it. Files it names (tokens,
certificates) are read at start-up by ``auth.py`` and ``tls.py``, which raise ``ConfigError`` when they
cannot be used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuneserve.repository import (
    DEFAULT_CACHE_MAX_BYTES,
    StoreConfig,
    StoreError,
    default_cache_dir,
    parse_root,
)


class BatchSettings(BaseModel):
    """Dynamic batching, per loaded model version."""

    model_config = ConfigDict(frozen=True)
    max_batch_size: int = Field(
        32, ge=1, le=4096, description="Most rows (texts or NER windows) in one ORT run."
    )
    max_batch_tokens: int = Field(
        16384,
        ge=1,
        description="Most padded tokens (rows x longest row) in one ORT run; a longer row runs alone.",
    )
    max_wait_us: int = Field(
        500,
        ge=0,
        le=1_000_000,
        description="How long the oldest queued row may wait for more to fill a batch while the model is "
        "busy. A request reaching an idle model runs at once.",
    )
    max_queue: int = Field(
        512,
        ge=1,
        description="Most rows (texts, or windows of long NER texts) admitted per model version, queued or "
        "running; beyond: RESOURCE_EXHAUSTED. A request reaching an idle model is always admitted.",
    )
    max_queue_tokens: int = Field(
        65536,
        ge=1,
        description="Most tokens admitted per model version, queued or running (estimated from the texts' "
        "length before tokenizing); beyond: RESOURCE_EXHAUSTED. A request reaching an idle model is always "
        "admitted.",
    )


class LimitSettings(BaseModel):
    """Request limits; requests beyond them get INVALID_ARGUMENT (the message size: RESOURCE_EXHAUSTED)."""

    model_config = ConfigDict(frozen=True)
    max_texts_per_request: int = Field(256, ge=1, description="Most texts in one request.")
    max_text_bytes: int = Field(65536, ge=1, description="Most UTF-8 bytes in one text.")
    max_windows_per_request: int = Field(
        1024,
        ge=1,
        description="Most NER windows (model rows over long texts) in one request; windowing stops there.",
    )
    max_message_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest gRPC message (checked by gRPC itself) or HTTP body received.",
    )


class HyperparameterDefaults(BaseModel):
    """What a Train request gets for each hyperparameter it leaves unset."""

    model_config = ConfigDict(frozen=True)
    # For the small data sets a retraining job often gets (hundreds of examples): 3 epochs at 5e-5 with
    # batch 32 barely move all-MiniLM-L6-v2 there; early stopping ends a run that has stopped improving.
    epochs: float = Field(10.0, gt=0, le=100)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=4096)
    max_length: int = Field(128, ge=8, le=512)
    seed: int = 42
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    early_stopping_patience: int = Field(2, ge=0, le=100)
    freeze: str = "none"


IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# What a training Job needs to reach an object store; passed through from the server's environment.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
)


class KubernetesSettings(BaseModel):
    """The Kubernetes executor (``--training-executor kubernetes``): what each training Job looks like.

    Environment: ``TUNESERVE_TRAINING__KUBERNETES__<FIELD>``; ``node_selector``, ``tolerations`` and
    ``env`` take JSON there (``{"pool": "gpu"}``, ``[{"key": "gpu", "operator": "Exists"}]``).
    """

    model_config = ConfigDict(frozen=True)
    namespace: str | None = Field(
        None,
        description="Namespace the Jobs run in [default: the server's own, in a cluster; else 'default'].",
    )
    image: str | None = Field(
        None,
        description="Image of the Jobs' container [default: this server's own, read from its pod: the "
        "trainer runs the train image].",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of the Jobs' container."
    )
    service_account: str | None = Field(
        None, description="serviceAccountName of the Jobs' pods [default: the namespace's default]."
    )
    cpu_request: str | None = Field(None, description="CPU request of each pod (Kubernetes quantity).")
    cpu_limit: str | None = Field(None, description="CPU limit of each pod.")
    memory_request: str | None = Field(None, description="Memory request of each pod (e.g. 4Gi).")
    memory_limit: str | None = Field(None, description="Memory limit of each pod.")
    gpus: int = Field(0, ge=0, le=64, description="nvidia.com/gpu of each pod, unless the request asks.")
    max_gpus_per_node: int = Field(
        0, ge=0, le=64, description="Most GPUs per pod a Train request may ask for (gpus_per_node)."
    )
    max_nnodes: int = Field(
        1, ge=1, le=64, description="Most nodes (pods of an Indexed Job) a Train request may ask (nnodes)."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the pods.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations of the pods.")
    ttl_seconds_after_finished: int | None = Field(
        3600, ge=0, description="Seconds a finished Job is kept before Kubernetes deletes it."
    )
    active_deadline_s: int | None = Field(
        None, ge=1, description="activeDeadlineSeconds of each Job (a job running longer fails)."
    )
    models_claim: str | None = Field(
        None,
        description="PersistentVolumeClaim holding a local model root; Jobs mount it at the model root's "
        "path (needed unless the model root is s3://).",
    )
    env: list[str] = Field(
        default_factory=lambda: list(AWS_VARIABLES),
        description="Environment variables of the server passed to the Jobs (those set).",
    )
    env_secret: str | None = Field(
        None,
        description="Secret that the Jobs read the credentials among --training-kubernetes-env from "
        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: secretKeyRef, optional keys) "
        "instead of the server's values, which would be written into the Job.",
    )
    unschedulable_timeout_s: float = Field(
        300.0, ge=0, description="A pod unschedulable for longer fails its job (reason Unschedulable)."
    )

    @property
    def resolved_namespace(self) -> str:
        """``namespace``, else the in-cluster namespace, else ``default``."""
        if self.namespace:
            return self.namespace
        try:
            return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"


class TrainingSettings(BaseModel):
    """The Train RPC: where jobs live, how many run, what they may read, and their defaults."""

    model_config = ConfigDict(frozen=True)
    enabled: bool = Field(True, description="Serve TrainingService (needs the train extra installed).")
    jobs_dir: Path | None = Field(
        None,
        description="Job store (jobs.sqlite) and job work folders [default: .jobs inside a local model "
        "root; with an object store, $XDG_STATE_HOME/tuneserve/jobs].",
    )
    data_root: str | None = Field(
        None,
        description="Folder, or s3://BUCKET/PREFIX, that Dataset.uri paths are resolved in; unset: only "
        "inline data.",
    )
    max_running: int = Field(1, ge=1, le=64, description="Jobs that train at the same time.")
    max_queued: int = Field(16, ge=0, description="Jobs that may wait; beyond: RESOURCE_EXHAUSTED.")
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads of each job (torch and ONNX Runtime); 0: half the cores, so serving keeps "
        "its latency on a CPU host.",
    )
    nice: int = Field(10, ge=0, le=19, description="Scheduling niceness of job processes (Linux).")
    max_nproc_per_node: int = Field(
        1,
        ge=1,
        le=64,
        description="Most training processes (DDP through torchrun) a Train request may ask for with "
        "nproc_per_node; they share the job's threads (on a GPU host: one GPU each).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where jobs train.")
    default_base: str | None = Field(
        None, description="Base model of a new model [default: the packaged all-MiniLM-L6-v2]."
    )
    quantization: Literal["int8-dynamic", "int8-static", "fp16", "none"] = Field(
        "int8-dynamic", description="Quantization of a job that does not ask for one."
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of the training data held out when a job sends no validation."
    )
    max_inline_examples: int = Field(100_000, ge=1, description="Most inline examples per dataset.")
    minimum_metric: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Primary metric (a fraction) a new version must reach to serve, for Train requests that "
        "set no minimum_metric; a first version below it is registered, not served [default: none].",
    )
    keep_versions: int = Field(
        5,
        ge=0,
        description="Versions kept per model after a job registers one (0: all); the serving "
        "version is always kept.",
    )
    cancel_grace_s: float = Field(
        10.0, ge=0, description="How long a cancelled job may take to stop before it is killed."
    )
    signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that jobs sign the versions they publish with, so servers run "
        "with --verify-key serve them.",
    )
    executor: Literal["local", "kubernetes"] = Field(
        "local",
        description="How jobs run: local: a process of this server; kubernetes: one batch/v1 Job each, "
        "watched through the Kubernetes API.",
    )
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    report_to: Literal["none", "mlflow", "tensorboard"] = Field(
        "none",
        description="Experiment tracking of Train requests that set no report_to: mlflow (configured by the "
        "server's MLFLOW_* variables) or tensorboard (needs the tracking extra).",
    )
    tensorboard_dir: Path | None = Field(
        None,
        description="Where report_to tensorboard writes, one folder per job (MODEL/JOB_ID) [default: "
        "tensorboard/ in the jobs folder].",
    )
    defaults: HyperparameterDefaults = Field(default_factory=HyperparameterDefaults)

    @field_validator("data_root")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        return None if value is None else _checked_root(value)


def _checked_root(value: str) -> str:
    try:
        return parse_root(value)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc


class ConfigError(Exception):
    """A setting that validated but cannot be used (a missing or empty file, a bad token): start-up stops."""


class AuthSettings(BaseModel):
    """Bearer tokens. With none configured, no RPC is checked; see ``auth.py`` for who may call what."""

    model_config = ConfigDict(frozen=True)
    admin_tokens_file: Path | None = Field(
        None,
        description="File of admin tokens (every RPC), one per line; blank lines and # comments are ignored. "
        "Tokens can also be given comma-separated in TUNESERVE_AUTH__ADMIN_TOKENS.",
    )
    admin_tokens: SecretStr = Field(
        SecretStr(""), description="Comma-separated admin tokens (from the environment; never a flag)."
    )
    read_tokens_file: Path | None = Field(
        None,
        description="File of read-only tokens (inference, ListModels, GetModel), one per line. Tokens can "
        "also be given comma-separated in TUNESERVE_AUTH__READ_TOKENS.",
    )
    read_tokens: SecretStr = Field(
        SecretStr(""), description="Comma-separated read-only tokens (from the environment; never a flag)."
    )
    require_token_for_inference: bool = Field(
        False,
        description="Inference, ListModels and GetModel need a read or admin token too (default: open to "
        "all; the privileged RPCs always need an admin token once tokens are configured).",
    )

    @property
    def configured(self) -> bool:
        """Whether any token source is given (the tokens themselves are read at start-up)."""
        return bool(
            self.admin_tokens_file
            or self.read_tokens_file
            or self.admin_tokens.get_secret_value().strip(", ")
            or self.read_tokens.get_secret_value().strip(", ")
        )


class TLSSettings(BaseModel):
    """TLS on the gRPC port (PEM files); with a client CA, mutual TLS. The metrics port stays plain HTTP."""

    model_config = ConfigDict(frozen=True)
    cert_file: Path | None = Field(
        None, description="Server certificate chain (PEM); with --tls-key, the gRPC port speaks TLS only."
    )
    key_file: Path | None = Field(
        None, description="Private key of the server certificate (PEM, unencrypted)."
    )
    client_ca_file: Path | None = Field(
        None,
        description="CA bundle (PEM) for client certificates: clients must present one it signed "
        "(mutual TLS).",
    )

    @model_validator(mode="after")
    def _complete(self) -> TLSSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "TLS needs both a certificate and its key: give --tls-cert and --tls-key together"
            )
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("--tls-client-ca (mutual TLS) needs TLS: give --tls-cert and --tls-key as well")
        return self

    @property
    def mode(self) -> Literal["off", "tls", "mtls"]:
        """What the gRPC port speaks: plaintext, TLS, or TLS with client certificates."""
        if self.cert_file is None:
            return "off"
        return "tls" if self.client_ca_file is None else "mtls"


SECTIONS = ("batch", "limits", "training", "auth", "tls")


class Settings(BaseSettings):
    """Everything ``tuneserve serve`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="TUNESERVE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    model_root: str = Field(
        "models",
        description="Model store root: a local folder or s3://BUCKET/PREFIX (endpoint, region and "
        "credentials from the standard AWS_* variables, profiles or web identity); the serving version of "
        "each model loads.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where versions downloaded from an object store are kept, so a restart downloads "
        "nothing [default: $XDG_CACHE_HOME/tuneserve/models].",
    )
    cache_max_bytes: int = Field(
        DEFAULT_CACHE_MAX_BYTES,
        ge=0,
        description="Size the cache is kept under: least recently used versions that do not serve are "
        "evicted.",
    )
    host: str = Field("[::]", description="Address to listen on.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port, logged).")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus /metrics port (0: any free port)."
    )
    metrics_host: str = Field("0.0.0.0", description="Address the metrics endpoint listens on.")
    http_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Open Inference Protocol (KServe V2) HTTP/REST port, on --host, with the gRPC port's TLS "
        "and tokens (0: off).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA (fp16 export) when onnxruntime-gpu sees a GPU, else CPU."
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per model (0: one per core)."
    )
    idle_session: bool = Field(
        True,
        description="On CPU with several intra-op threads, a second ONNX Runtime session per model whose "
        "threads spin between operators serves requests that reach an idle model (lower latency for a lone "
        "request); batches under load run on the main session, whose threads sleep when idle, leaving the "
        "cores to gRPC. Costs one more copy of the weights in memory.",
    )
    grace_period_s: float = Field(
        20.0, ge=0, description="On SIGTERM, how long in-flight calls may take to finish."
    )
    store_poll_interval_s: float = Field(
        10.0,
        ge=0,
        description="How often to look for serving versions that another process (a trainer, another "
        "replica on the same volume) set in the model store, and switch to them (0: never).",
    )
    max_stream_in_flight: int = Field(32, ge=1, description="Requests of one stream processed concurrently.")
    on_load_failure: Literal["unavailable", "serve-previous"] = Field(
        "unavailable",
        description="When a model's serving version fails to load (a corrupt file): unavailable: its calls "
        "get UNAVAILABLE; serve-previous: serve the newest intact version before it (logged as an error).",
    )
    strict_readiness: bool = Field(
        False,
        description="Overall health and InferenceService report NOT_SERVING while any model has no version "
        "serving (its serving version failed to load). Each model's own health entry (service name = "
        "model name) says this either way.",
    )
    max_loaded_versions: int = Field(
        2,
        ge=1,
        description="Versions of one model kept loaded besides the serving one, for calls that name a "
        "version; beyond, the least recently used is unloaded once its calls finish.",
    )
    loaded_version_idle_s: float = Field(
        300.0,
        ge=0,
        description="A version loaded for calls that name it (not the serving one) is unloaded after this "
        "many seconds without calls (0: never).",
    )
    verify_key: Path | None = Field(
        None,
        description="Ed25519 public key (PEM): serve only model versions signed with its private key "
        "(tuneserve export --signing-key); unsigned or badly signed versions are refused at load.",
    )
    max_concurrent_rpcs: int = Field(
        0,
        ge=0,
        description="Most RPCs (streams included) handled at once; beyond, gRPC answers RESOURCE_EXHAUSTED "
        "before reading the request, so no call waits unseen in its backlog (0: a quarter of --max-queue, "
        "at least 64).",
    )
    batch: BatchSettings = Field(default_factory=BatchSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TLSSettings = Field(default_factory=TLSSettings)

    @field_validator("model_root")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        return _checked_root(value)

    @property
    def store(self) -> StoreConfig:
        """The model store, as ``open_store`` and job processes take it."""
        local = not self.model_root.startswith("s3://")
        return StoreConfig(
            root=str(Path(self.model_root).resolve()) if local else self.model_root,
            cache_dir=(self.cache_dir or default_cache_dir()).resolve(),
            cache_max_bytes=self.cache_max_bytes,
        )

    @property
    def jobs_dir(self) -> Path:
        """The job store's folder: set, else ``.jobs`` in a local model root, else a local state folder
        (an object store holds no job database)."""
        if self.training.jobs_dir is not None:
            return self.training.jobs_dir
        if not self.model_root.startswith("s3://"):
            return Path(self.model_root) / ".jobs"
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        return Path(state) / "tuneserve" / "jobs"

    @property
    def concurrent_rpcs(self) -> int:
        """``max_concurrent_rpcs``, or its default: every admitted call holds at least one queued row."""
        return self.max_concurrent_rpcs or max(64, self.batch.max_queue // 4)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Environment and defaults, overridden by the non-None values given (the CLI's flags).

        Keys in ``SECTIONS`` (``batch``, ``limits``, ``training``, ``auth``, ``tls``) take dicts merged over
        the environment's nested values.
        """
        base = cls()
        data = base.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            if key in SECTIONS:
                data[key] = _merged(data[key], value)
            else:
                data[key] = value
        return cls(**data)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the non-None values of ``over``; nested dicts (``training.kubernetes``) merged too."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        elif value is not None:
            out[key] = value
    return out
