"""Train requests that must be refused at once, with the right status and a reason; and job listing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from helpers import FIXTURES
from tuneserve.v1 import common_pb2, training_pb2

from .live import ServerProcess
from .training import classification_request, code_of, wait_job

INVALID = grpc.StatusCode.INVALID_ARGUMENT
HP = training_pb2.Hyperparameters


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("training-data")
    root = base / "data"
    root.mkdir()
    shutil.copy(FIXTURES / "sentiment_train.tsv", root / "reviews.tsv")
    (root / "broken.jsonl").write_text('{"text": "fine", "label": "positive"}\n{"text": 3}\n')
    (base / "secret.tsv").write_text("text\tlabel\nhidden\tx\nother\ty\n")
    (root / "link.tsv").symlink_to(base / "secret.tsv")
    return root


@pytest.fixture(scope="module")
def trainer(
    model_store: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("store") / "models"
    shutil.copytree(model_store, root, ignore=shutil.ignore_patterns(".jobs"))
    server = ServerProcess(
        root, "--intra-op-threads", "1", "--data-root", str(data_root), "--max-queued-jobs", "1"
    )
    yield server
    server.stop()


def _train(server: ServerProcess, request: training_pb2.TrainRequest) -> tuple[grpc.StatusCode, str]:
    try:
        server.training.Train(request)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _uri(model: str, uri: str, **fields: object) -> training_pb2.TrainRequest:
    return training_pb2.TrainRequest(
        model=model,
        task=common_pb2.TASK_CLASSIFICATION,
        training_data=training_pb2.Dataset(uri=uri),
        **fields,
    )


def _with(request: training_pb2.TrainRequest, **hyper: object) -> training_pb2.TrainRequest:
    request.hyperparameters.CopyFrom(HP(**hyper))
    return request


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda r: r.ClearField("model"), "model is required"),
        (lambda r: setattr(r, "model", "Bad Name"), "invalid model name"),
        (lambda r: r.ClearField("task"), "task is required"),
        (lambda r: r.ClearField("training_data"), "training_data is empty"),
        (lambda r: setattr(r, "multi_label", True) or setattr(r, "task", 2), "multi_label must be false"),
        (lambda r: setattr(r, "task", 2), "needs token_examples"),
        (lambda r: _with(r, epochs=0), "epochs"),
        (lambda r: _with(r, learning_rate=-1), "learning_rate"),
        (lambda r: _with(r, batch_size=0), "batch_size"),
        (lambda r: _with(r, max_length=4), "max_length"),
        (lambda r: _with(r, warmup_ratio=1.0), "warmup_ratio"),
        (lambda r: _with(r, freeze="bottom"), "freeze"),
        (lambda r: _with(r, freeze="1.5"), "freeze"),
        (lambda r: _with(r, freeze="\u0663"), "freeze"),  # an Arabic-Indic three: a digit, not an integer
        (lambda r: _with(r, freeze="3"), "the base model has 2 layers"),
        (lambda r: _with(r, seed=-1), "seed"),
        (lambda r: _with(r, seed=2**32), "seed"),
        (lambda r: setattr(r, "promotion_policy", 99), "promotion_policy 99"),
        (lambda r: setattr(r, "promotion_tolerance", -0.1), "promotion_tolerance"),
        (lambda r: setattr(r, "minimum_metric", 1.5), "minimum_metric"),
        (lambda r: r.training_data.classification_examples.examples[0].ClearField("labels"), "exactly one"),
        (
            lambda r: setattr(r.training_data.classification_examples.examples[0], "text", " "),
            "text is empty",
        ),
        (
            lambda r: r.validation_data.classification_examples.examples[0].labels.__setitem__(0, "meh"),
            "'meh' is not in the training data",
        ),
    ],
)
def test_bad_requests_are_invalid_argument(trainer: ServerProcess, tiny_base: Path, change, needle) -> None:
    request = classification_request("fresh-model", tiny_base)
    change(request)
    code, details = _train(trainer, request)
    assert code == INVALID
    assert needle in details


def test_single_label_and_bad_tags(trainer: ServerProcess, tiny_base: Path) -> None:
    request = classification_request("fresh-model", tiny_base)
    for ex in request.training_data.classification_examples.examples:
        ex.labels[0] = "positive"
    code, details = _train(trainer, request)
    assert code == INVALID and "at least two" in details
    ner = training_pb2.TrainRequest(
        model="fresh-ner",
        task=common_pb2.TASK_TOKEN_CLASSIFICATION,
        training_data=training_pb2.Dataset(
            token_examples=training_pb2.TokenExamples(
                examples=[training_pb2.TokenExample(tokens=["John", "runs"], tags=["B-PER"])]
            )
        ),
    )
    code, details = _train(trainer, ner)
    assert code == INVALID and "2 tokens but 1 tags" in details
    ner.training_data.token_examples.examples[0].tags.append("X-PER")
    code, details = _train(trainer, ner)
    assert code == INVALID and "'X-PER'" in details


def test_no_validation_data_is_held_out_stratified_or_refused(
    trainer: ServerProcess, tiny_base: Path
) -> None:
    """One example per label leaves nothing to hold out without emptying a label: refused with the reason;
    no internal file of the server is named."""
    request = classification_request("fresh-model", tiny_base)
    request.ClearField("validation_data")
    del request.training_data.classification_examples.examples[2:]
    request.training_data.classification_examples.examples[1].labels[0] = "other"
    code, details = _train(trainer, request)
    assert code == INVALID and "no validation data can be held out" in details, details
    assert "'other': 1" in details and "validation.jsonl" not in details


def test_multi_label_needs_two_labels(trainer: ServerProcess, tiny_base: Path) -> None:
    request = classification_request("fresh-model", tiny_base, multi_label=True)
    for ex in [*request.training_data.classification_examples.examples]:
        ex.labels[:] = ["positive"]
    code, details = _train(trainer, request)
    assert code == INVALID and "single label ('positive')" in details and "at least two" in details


def test_a_different_label_set_needs_replace_labels(trainer: ServerProcess, tiny_base: Path) -> None:
    """tiny-sentiment knows positive and negative: a set with neutral and without negative is refused,
    naming both differences."""
    request = classification_request("tiny-sentiment", tiny_base)
    request.ClearField("base_model")
    for data in (request.training_data, request.validation_data):
        for ex in data.classification_examples.examples:
            if ex.labels[0] == "negative":
                ex.labels[0] = "neutral"
    code, details = _train(trainer, request)
    assert code == INVALID and "replace_labels" in details, details
    assert "new 'neutral'" in details and "missing 'negative'" in details


def test_existing_model_keeps_its_task(trainer: ServerProcess, tiny_base: Path) -> None:
    request = classification_request("tiny-ner", tiny_base)
    code, details = _train(trainer, request)
    assert code == INVALID and "ner model" in details


def test_unknown_base_model_is_not_found(trainer: ServerProcess, tmp_path: Path) -> None:
    request = classification_request("fresh-model", tmp_path / "no-such-model")
    code, details = _train(trainer, request)
    assert code == grpc.StatusCode.NOT_FOUND and "not a model folder" in details


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("../secret.tsv", "outside the server's data root"),
        ("sub/../../secret.tsv", "outside the server's data root"),
        ("/etc/passwd", "outside the server's data root"),
        ("link.tsv", "outside the server's data root"),
        ("s3://bucket/data.tsv", "only paths under the server's data root"),
        ("missing.tsv", "no such file"),
        ("broken.jsonl", "broken.jsonl:2: missing key"),
        ("x\0y.tsv", "NUL character"),
        ("a" * 5000, "at most 4096"),
        ("b" * 300 + ".tsv", "cannot be opened"),
    ],
)
def test_uri_datasets_stay_inside_the_data_root(trainer: ServerProcess, uri: str, needle: str) -> None:
    code, details = _train(trainer, _uri("fresh-model", uri))
    assert code == INVALID
    assert needle in details
    assert "secret" not in details or uri.startswith(("..", "sub", "link"))


def test_hub_base_while_offline_is_invalid(model_store: Path, tmp_path: Path, tiny_base: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1", env={"HF_HUB_OFFLINE": "1"})
    try:
        request = classification_request("from-hub", tiny_base)
        request.base_model = "someone/not-cached-model"
        code, details = _train(server, request)
        assert code == INVALID
        assert "offline (HF_HUB_OFFLINE is set)" in details
        # A base on the server's disk still trains (here: up to the point of admission).
        request.base_model = str(tiny_base)
        request.hyperparameters.freeze = "2"
        job = server.training.Train(request).job
        server.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=job.id))
        wait_job(server, job.id, timeout=120)
    finally:
        server.stop()


def test_uri_needs_a_data_root(model_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    server = ServerProcess(root, "--intra-op-threads", "1")
    try:
        code, details = _train(server, _uri("fresh-model", "reviews.tsv"))
        assert code == INVALID and "no data root" in details
    finally:
        server.stop()


def test_unknown_jobs_and_bad_pages(trainer: ServerProcess) -> None:
    get = trainer.training.GetTrainingJob
    assert code_of(get, training_pb2.GetTrainingJobRequest(job_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(get, training_pb2.GetTrainingJobRequest()) == INVALID
    cancel = trainer.training.CancelTrainingJob
    assert code_of(cancel, training_pb2.CancelTrainingJobRequest(job_id="nope")) == grpc.StatusCode.NOT_FOUND
    watch = trainer.training.WatchTrainingJob
    assert (
        code_of(lambda r: list(watch(r)), training_pb2.WatchTrainingJobRequest(job_id="nope"))
        == grpc.StatusCode.NOT_FOUND
    )
    listing = trainer.training.ListTrainingJobs
    assert code_of(listing, training_pb2.ListTrainingJobsRequest(page_size=-1)) == INVALID
    assert code_of(listing, training_pb2.ListTrainingJobsRequest(page_token="x")) == INVALID


def test_one_job_per_model_queue_limit_and_listing(trainer: ServerProcess, tiny_base: Path) -> None:
    """A uri job runs; a second job for the same model is ALREADY_EXISTS; the queue holds one more job;
    beyond that RESOURCE_EXHAUSTED. Cancelled queued jobs are listed, newest first, page by page."""
    running = trainer.training.Train(
        _with(
            _uri("from-uri", "reviews.tsv", base_model=str(tiny_base)),
            epochs=100,
            batch_size=8,
            max_length=32,
        )
    ).job
    code, details = _train(trainer, classification_request("from-uri", tiny_base))
    assert code == grpc.StatusCode.ALREADY_EXISTS and running.id in details
    queued = trainer.training.Train(classification_request("second", tiny_base)).job
    assert queued.state == training_pb2.JOB_STATE_QUEUED
    code, details = _train(trainer, classification_request("third", tiny_base))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in details

    cancelled = trainer.training.CancelTrainingJob(
        training_pb2.CancelTrainingJobRequest(job_id=queued.id)
    ).job
    assert cancelled.state == training_pb2.JOB_STATE_CANCELLED and not cancelled.HasField("started_at")
    trainer.training.CancelTrainingJob(training_pb2.CancelTrainingJobRequest(job_id=running.id))
    assert wait_job(trainer, running.id, timeout=120).state == training_pb2.JOB_STATE_CANCELLED

    first = trainer.training.ListTrainingJobs(training_pb2.ListTrainingJobsRequest(page_size=1))
    assert [j.id for j in first.jobs] == [queued.id] and first.next_page_token
    second = trainer.training.ListTrainingJobs(
        training_pb2.ListTrainingJobsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [j.id for j in second.jobs] == [running.id]
    only = trainer.training.ListTrainingJobs(training_pb2.ListTrainingJobsRequest(model="from-uri")).jobs
    assert [j.id for j in only] == [running.id]
    by_state = trainer.training.ListTrainingJobs(
        training_pb2.ListTrainingJobsRequest(state=training_pb2.JOB_STATE_SUCCEEDED)
    ).jobs
    assert by_state == []
