"""The CLI's side of a remote server: connect (token, TLS), build Train requests from local files, follow
a job with a progress bar, predict, print messages as JSON. Needs grpcio (the serve or gpu extra)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import click

DEFAULT_SERVER = "localhost:50051"
# What an insecure channel reports when the server speaks TLS: it hangs up on the plaintext preface.
_PLAINTEXT_TO_TLS = ("socket closed", "connection reset", "end of file", "eof")
# What a TLS channel reports when the server speaks plaintext.
_TLS_TO_PLAINTEXT = ("handshake", "ssl", "tls", "wrong_version_number")


@dataclass(frozen=True)
class Connection:
    server: str = DEFAULT_SERVER
    token: str | None = None
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: float = 60.0

    def channel(self) -> Any:
        grpc = _grpc()
        if self.ca_cert or self.client_cert:
            if bool(self.client_cert) != bool(self.client_key):
                raise click.UsageError("--client-cert and --client-key go together")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.ca_cert.read_bytes() if self.ca_cert else None,
                private_key=self.client_key.read_bytes() if self.client_key else None,
                certificate_chain=self.client_cert.read_bytes() if self.client_cert else None,
            )
            return grpc.secure_channel(self.server, credentials)
        return grpc.insecure_channel(self.server)

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    @property
    def secure(self) -> bool:
        return bool(self.ca_cert or self.client_cert)

    def error(self, exc: Any) -> click.ClickException:
        """A gRPC error as a ClickException: the status, the server's reason, and a hint when the failure
        looks like TLS on one side only."""
        code, details = exc.code(), exc.details() or ""
        message = f"{code.name}: {details}"
        if code.name == "UNAVAILABLE":
            low = details.lower()
            if not self.secure and any(sign in low for sign in _PLAINTEXT_TO_TLS):
                message += f" (the server speaks TLS? pass --ca-cert CA.pem to reach {self.server})"
            elif self.secure and any(sign in low for sign in _TLS_TO_PLAINTEXT):
                message += " (the server speaks plaintext, or its certificate is not signed by --ca-cert?)"
        return click.ClickException(message)


def _grpc() -> Any:
    try:
        import grpc
    except ImportError as exc:  # pragma: no cover - the serve extra has it
        raise click.ClickException(
            "talking to a server needs grpcio: install tuneserve[serve] (or tuneserve[gpu])"
        ) from exc
    return grpc


def call(conn: Connection, stub_name: str, method: str, request: Any) -> Any:
    """One unary call; a gRPC error becomes a ClickException with the status and the server's reason."""
    from tuneserve.v1 import model_pb2_grpc, training_pb2_grpc

    stubs = {
        "training": training_pb2_grpc.TrainingServiceStub,
        "models": model_pb2_grpc.ModelServiceStub,
    }
    grpc = _grpc()
    with conn.channel() as channel:
        stub = stubs[stub_name](channel)
        try:
            return getattr(stub, method)(request, metadata=conn.metadata(), timeout=conn.timeout)
        except grpc.RpcError as exc:
            raise conn.error(exc) from exc


def echo(message: Any) -> None:
    """A message as one JSON object on stdout (proto field names, enums by name, 64-bit ints as numbers)."""
    click.echo(json.dumps(as_dict(message)))


def as_dict(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return _ints(message.DESCRIPTOR, MessageToDict(message, preserving_proto_field_name=True))


def _ints(descriptor: Any, value: dict[str, Any]) -> dict[str, Any]:
    """MessageToDict writes 64-bit integers as strings (JSON's numbers are doubles); versions and steps
    are small, so the 64-bit integer fields of the message (read from its descriptor, nested messages
    and maps included) become numbers again. Strings stay strings: a model named ``2024`` is "2024"."""
    for field in descriptor.fields:
        if field.name not in value:
            continue
        item = value[field.name]
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            entry = kind.fields_by_name["value"]
            value[field.name] = {k: _field(entry, v) for k, v in item.items()}
        elif field.is_repeated:
            value[field.name] = [_field(field, v) for v in item]
        else:
            value[field.name] = _field(field, item)
    return value


_INT64 = frozenset({3, 4, 6, 16, 18})  # FieldDescriptor.TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def _field(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
        return _whole_numbers(value)
    if field.message_type is not None:  # a nested message; well-known types (Timestamp) are strings
        return _ints(field.message_type, value) if isinstance(value, dict) else value
    return int(value) if field.type in _INT64 and isinstance(value, str) else value


def trials_table(trials: list[dict[str, Any]], best: int | None, objective: str) -> str:
    """A search's trials as a readable table: number, state, objective, seconds, hyperparameters; the best
    one marked ``*``."""
    header = ["trial", "state", objective or "value", "epochs", "seconds", "hyperparameters"]
    rows = [header]
    for t in trials:
        value = t.get("value")
        params = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t["params"].items())
        )
        rows.append(
            [
                f"{'*' if t['number'] == best else ' '}{t['number']}",
                t["state"] + (f" ({t['error']})" if t.get("error") else ""),
                "-" if value is None else f"{value:.4f}",
                str(t.get("epochs", len(t.get("history") or ()))),
                f"{t.get('seconds') or 0:.1f}",
                params,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    )


def job_trials_table(job: Any) -> str:
    """The trials table of a TrainingJob message; empty without a search."""
    from tuneserve.v1 import training_pb2

    if not job.trials:
        return ""
    trials = []
    for t in job.trials:
        trials.append(
            {
                "number": t.number,
                "state": training_pb2.TrialState.Name(t.state).removeprefix("TRIAL_STATE_").lower(),
                "value": t.value if t.HasField("value") else None,
                "epochs": t.epochs,
                "seconds": t.seconds,
                "error": t.error,
                "params": {f.name: v for f, v in t.hyperparameters.ListFields()},
            }
        )
    best = job.best_trial if job.HasField("best_trial") else None
    return trials_table(trials, best, job.primary_metric)


def _whole_numbers(value: Any) -> Any:
    """A Struct's numbers are doubles: whole ones (trial numbers, epochs) become integers again."""
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# ---------------------------------------------------------------- Train


def dataset(
    task: str | None, path: Path | str | None, uri: str | None, what: str, columns: dict[str, str]
) -> Any:
    """A Dataset message: examples read from a local file (sent inline), or a uri on the server."""
    from tuneserve import data as datasets
    from tuneserve.v1 import training_pb2

    if path and uri:
        raise click.UsageError(f"give --{what} or --{what}-uri, not both")
    if uri:
        return training_pb2.Dataset(uri=uri)
    if path is None:
        return None
    if task is None:
        raise click.UsageError(f"--task is needed to read --{what} {path}")
    from tuneserve import objects

    multi_label = columns.pop("multi_label", False)
    try:
        with contextlib.ExitStack() as stack:
            local = stack.enter_context(objects.fetched(path)) if objects.is_s3(path) else Path(path)
            examples = datasets.read_examples(task, local, multi_label=multi_label, **columns)
    except (datasets.DataError, objects.ObjectError) as exc:
        raise click.ClickException(str(exc)) from exc
    if task == "ner":
        return training_pb2.Dataset(
            token_examples=training_pb2.TokenExamples(
                examples=[training_pb2.TokenExample(tokens=ex.tokens, tags=ex.tags) for ex in examples]
            )
        )
    return training_pb2.Dataset(
        classification_examples=training_pb2.ClassificationExamples(
            examples=[training_pb2.ClassificationExample(text=ex.text, labels=ex.labels) for ex in examples]
        )
    )


# ---------------------------------------------------------------- watch


def watch(conn: Connection, job_id: str, out: Callable[[Any], None] = echo) -> int:
    """Follow a job with a progress bar on stderr; print the final job; 0 only if it succeeded."""
    from tqdm import tqdm

    from tuneserve.v1 import training_pb2, training_pb2_grpc

    grpc = _grpc()
    bar = tqdm(total=0, unit="step", file=sys.stderr, dynamic_ncols=True, desc="queued")
    last_stage = last_message = None
    try:
        with conn.channel() as channel:
            stub = training_pb2_grpc.TrainingServiceStub(channel)
            request = training_pb2.WatchTrainingJobRequest(job_id=job_id)
            try:
                for response in stub.WatchTrainingJob(request, metadata=conn.metadata()):
                    event = response.event
                    stage = (
                        training_pb2.TrainingStage.Name(event.stage).removeprefix("TRAINING_STAGE_").lower()
                    )
                    if stage != last_stage:
                        bar.set_description(stage)
                        last_stage = stage
                    p = event.progress
                    if p.total_steps and bar.total != p.total_steps:
                        bar.reset(total=p.total_steps)
                    if p.step > bar.n:
                        bar.update(p.step - bar.n)
                    postfix = {"epoch": f"{p.epoch:.2f}"}
                    if p.loss:
                        postfix["loss"] = f"{p.loss:.4f}"
                    bar.set_postfix(postfix, refresh=False)
                    if event.message and event.message != last_message:  # once per change
                        bar.write(f"[{stage}] {event.message}", file=sys.stderr)
                        last_message = event.message
                job = stub.GetTrainingJob(
                    training_pb2.GetTrainingJobRequest(job_id=job_id),
                    metadata=conn.metadata(),
                    timeout=conn.timeout,
                ).job
            except grpc.RpcError as exc:
                raise conn.error(exc) from exc
    finally:
        bar.close()
    out(job)
    if table := job_trials_table(job):
        click.echo(table, err=True)
    if job.state != training_pb2.JOB_STATE_SUCCEEDED:
        state = training_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
        click.echo(f"job {job_id} {state}: {job.error or job.promotion_reason or ''}".rstrip(": "), err=True)
        return 1
    return 0


# ---------------------------------------------------------------- predict


def predict(
    conn: Connection,
    model: str,
    texts: Iterable[str],
    *,
    version: int = 0,
    top_k: int = 0,
    aggregation: str = "first",
    min_score: float = 0.0,
    per_call: int = 32,
) -> Iterator[dict[str, Any]]:
    """The model's answer to each text, in order, as a dict: ``labels`` for a classification model,
    ``entities`` for a token classification one (the task is asked with GetModel). Texts are sent
    ``per_call`` at a time, so a long stream of lines is answered in batches as it comes."""
    from tuneserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

    grpc = _grpc()
    options = {"metadata": conn.metadata(), "timeout": conn.timeout}
    with conn.channel() as channel:
        inference = inference_pb2_grpc.InferenceServiceStub(channel)
        try:
            request = model_pb2.GetModelRequest(name=model)
            task = model_pb2_grpc.ModelServiceStub(channel).GetModel(request, **options).model.task
            entities = task == common_pb2.TASK_TOKEN_CLASSIFICATION
            strategy = inference_pb2.AggregationStrategy.Value(f"AGGREGATION_STRATEGY_{aggregation.upper()}")
            it = iter(texts)
            while chunk := list(islice(it, per_call)):
                if entities:
                    reply = inference.ExtractEntities(
                        inference_pb2.ExtractEntitiesRequest(
                            model=model,
                            version=version,
                            texts=chunk,
                            aggregation=strategy,
                            min_score=min_score,
                        ),
                        **options,
                    )
                    for text, result in zip(chunk, reply.results, strict=True):
                        found = [
                            {
                                "label": e.label,
                                "text": e.text,
                                "start": e.start,
                                "end": e.end,
                                "score": _score(e),
                            }
                            for e in result.entities
                        ]
                        yield _answer(text, reply, result, entities=found)
                else:
                    reply = inference.Classify(
                        inference_pb2.ClassifyRequest(model=model, version=version, texts=chunk, top_k=top_k),
                        **options,
                    )
                    for text, result in zip(chunk, reply.results, strict=True):
                        labels = [{"label": s.label, "score": _score(s)} for s in result.labels]
                        yield _answer(text, reply, result, labels=labels)
        except grpc.RpcError as exc:
            raise conn.error(exc) from exc


def _answer(text: str, reply: Any, result: Any, **answer: Any) -> dict[str, Any]:
    return {
        "text": text,
        "model": reply.model,
        "version": reply.version,
        **answer,
        "truncated": result.truncated,
    }


def _score(item: Any) -> float:
    return round(float(item.score), 6)  # a float32 on the wire: six digits are all it has
