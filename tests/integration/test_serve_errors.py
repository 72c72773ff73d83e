"""The bad-request battery: each gets the right status and a message saying what is allowed; the server
keeps serving afterwards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tuneserve.v1 import inference_pb2, model_pb2, training_pb2, training_pb2_grpc

from .live import ServerProcess, metric_value

OK = inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["fine"])
I = inference_pb2  # noqa: E741
INVALID = grpc.StatusCode.INVALID_ARGUMENT

CASES = [
    # (id, rpc, request, code, fragments the message must contain)
    (
        "empty batch",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment"),
        INVALID,
        ["texts is empty", "between 1 and 64"],
    ),
    (
        "too many texts",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", texts=["a"] * 65),
        INVALID,
        ["65 texts", "at most 64"],
    ),
    (
        "empty string",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", texts=["ok", ""]),
        INVALID,
        ["texts[1] is empty", "non-whitespace"],
    ),
    (
        "whitespace only",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-ner", texts=[" \t\n"]),
        INVALID,
        ["texts[0] is empty"],
    ),
    (
        "10 MB text",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", texts=["x" * 10_000_000]),
        INVALID,
        ["10000000 bytes", "at most 65536 bytes"],
    ),
    (
        "NUL byte",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", texts=["a\x00b"]),
        INVALID,
        ["NUL", "code point 1"],
    ),
    (
        "NUL byte ner",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-ner", texts=["\x00"]),
        INVALID,
        ["NUL"],
    ),
    (
        "unknown model",
        "Classify",
        I.ClassifyRequest(model="no-such-model", texts=["a"]),
        grpc.StatusCode.NOT_FOUND,
        ["'no-such-model'", "served models: tiny-ner, tiny-sentiment"],
    ),
    (
        "unknown version",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", version=42, texts=["a"]),
        grpc.StatusCode.NOT_FOUND,
        ["no version 42", "kept versions: 1"],
    ),
    (
        "negative version",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", version=-1, texts=["a"]),
        INVALID,
        ["version is -1", "0 for the serving version"],
    ),
    ("missing model", "Classify", I.ClassifyRequest(texts=["a"]), INVALID, ["model is required"]),
    (
        "malformed model",
        "Classify",
        I.ClassifyRequest(model="../etc", texts=["a"]),
        INVALID,
        ["not valid", "a-z"],
    ),
    (
        "unknown aggregation",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-ner", texts=["a"], aggregation=99),
        INVALID,
        ["aggregation", "99", "SIMPLE, FIRST"],
    ),
    (
        "min_score above 1",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-ner", texts=["a"], min_score=1.5),
        INVALID,
        ["min_score is 1.5", "[0, 1]"],
    ),
    (
        "min_score NaN",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-ner", texts=["a"], min_score=float("nan")),
        INVALID,
        ["min_score"],
    ),
    (
        "top_k < 0",
        "Classify",
        I.ClassifyRequest(model="tiny-sentiment", texts=["a"], top_k=-1),
        INVALID,
        ["top_k is -1", "0 for all labels"],
    ),
    (
        "task mismatch",
        "Classify",
        I.ClassifyRequest(model="tiny-ner", texts=["a"]),
        INVALID,
        ["use ExtractEntities"],
    ),
    (
        "task mismatch ner",
        "ExtractEntities",
        I.ExtractEntitiesRequest(model="tiny-sentiment", texts=["a"]),
        INVALID,
        ["use Classify"],
    ),
]


@pytest.mark.parametrize(
    ("rpc", "request_", "code", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request(
    server: ServerProcess, rpc: str, request_: object, code: grpc.StatusCode, fragments: list[str]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(server.inference, rpc)(request_, timeout=30)
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details()
    assert server.inference.Classify(OK, timeout=10).results  # still serving


def test_unknown_method_every_time(server: ServerProcess) -> None:
    """The interceptor keeps each method's wrapped handler; a method that does not exist is never kept,
    and answers UNIMPLEMENTED on every call, between calls that work."""
    unknown = server.channel.unary_unary(
        "/tuneserve.v1.InferenceService/Summarize",
        request_serializer=inference_pb2.ClassifyRequest.SerializeToString,
        response_deserializer=inference_pb2.ClassifyResponse.FromString,
    )
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as info:
            unknown(OK, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert server.inference.Classify(OK, timeout=10).results


def test_model_service_errors(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.models.GetModel(model_pb2.GetModelRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "known models: tiny-ner" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        server.models.ListModels(model_pb2.ListModelsRequest(page_size=-1))
    assert info.value.code() == INVALID and "page_size is -1" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        server.models.ListModels(model_pb2.ListModelsRequest(page_token="%%%"))
    assert info.value.code() == INVALID and "next_page_token" in info.value.details()
    set_version = server.models.SetServingVersion
    for name, version, code in [
        ("tiny-sentiment", 0, INVALID),
        ("tiny-sentiment", 99, grpc.StatusCode.NOT_FOUND),
        ("nope", 1, grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            set_version(model_pb2.SetServingVersionRequest(name=name, version=version))
        assert info.value.code() == code
    # Setting the version that serves is a no-op; deleting it is refused.
    same = set_version(model_pb2.SetServingVersionRequest(name="tiny-sentiment", version=1))
    assert same.model.serving_version == 1
    with pytest.raises(grpc.RpcError) as info:
        server.models.DeleteModelVersion(
            model_pb2.DeleteModelVersionRequest(name="tiny-sentiment", version=1)
        )
    assert (
        info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "serving version" in info.value.details()
    )


def test_training_can_be_turned_off(model_store) -> None:  # type: ignore[no-untyped-def]
    proc = ServerProcess(model_store, "--no-training")
    try:
        stub = training_pb2_grpc.TrainingServiceStub(proc.channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Train(training_pb2.TrainRequest(model="x"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "disabled" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            list(stub.WatchTrainingJob(training_pb2.WatchTrainingJobRequest(job_id="x")))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert proc.inference.Classify(OK, timeout=10).results
    finally:
        assert proc.stop() == 0


def test_message_over_the_grpc_limit(model_store) -> None:  # type: ignore[no-untyped-def]
    """Past ``--max-message-bytes`` gRPC itself refuses the message (RESOURCE_EXHAUSTED, sizes quoted)."""
    proc = ServerProcess(model_store, "--max-message-bytes", "100000")
    try:
        with pytest.raises(grpc.RpcError) as info:
            proc.inference.Classify(
                I.ClassifyRequest(model="tiny-sentiment", texts=["x" * 200_000]), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "100000" in info.value.details()
        assert proc.inference.Classify(OK, timeout=10).results
    finally:
        assert proc.stop() == 0


def test_flood_past_the_queue(server: ServerProcess) -> None:
    """Many concurrent full requests overflow the queue (256 texts): RESOURCE_EXHAUSTED at once with retry
    advice; every other call succeeds, and the server still serves afterwards."""
    texts = ["a rather long sentence that fills all of the tiny model's thirty-two token window " * 2] * 64
    request = I.ClassifyRequest(model="tiny-sentiment", texts=texts)

    def call(_: int) -> str:
        try:
            server.inference.Classify(request, timeout=60)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
            assert "retry in about" in exc.details() and "queue limit of 256" in exc.details()
            return "exhausted"
        return "ok"

    with ThreadPoolExecutor(48) as pool:
        outcomes = list(pool.map(call, range(96)))
    assert outcomes.count("exhausted") > 0 and outcomes.count("ok") > 0
    assert server.inference.Classify(OK, timeout=10).results
    text = server.scrape()
    assert metric_value(
        text, "tuneserve_requests_total", method="Classify", model="tiny-sentiment", code="RESOURCE_EXHAUSTED"
    ) >= outcomes.count("exhausted")


def test_deadline_exceeded_is_not_computed(server: ServerProcess) -> None:
    """Calls whose deadline cannot be met behind a flood get DEADLINE_EXCEEDED (from gRPC before they reach
    the handler, when refused at admission, or when it passes while they are queued); either way their rows
    are not run."""
    texts = ["a rather long sentence that fills all of the tiny model's thirty-two token window " * 2] * 64
    flood = I.ClassifyRequest(model="tiny-sentiment", texts=texts)
    short = I.ClassifyRequest(model="tiny-sentiment", texts=texts[:8])
    before = server.scrape()

    def call(i: int) -> tuple[grpc.StatusCode, int]:
        request = flood if i % 2 == 0 else short
        try:
            server.inference.Classify(request, timeout=60 if i % 2 == 0 else 0.002)
        except grpc.RpcError as exc:
            return exc.code(), 0
        return grpc.StatusCode.OK, len(request.texts)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(64)))
    codes = {code for code, _ in results}
    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes
    assert codes <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    ok_rows = sum(rows for _, rows in results)
    run_rows = metric_value(server.scrape(), "tuneserve_batch_size_sum", model="tiny-sentiment") - (
        metric_value(before, "tuneserve_batch_size_sum", model="tiny-sentiment")
    )
    # Rows that started running just before their call's 2 ms passed are the only others run (the short
    # calls' rows would be 256 if expired ones ran too).
    assert run_rows <= ok_rows + 64, (run_rows, ok_rows)
    assert server.inference.Classify(OK, timeout=10).results
