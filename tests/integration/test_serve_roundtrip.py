"""Classify and ExtractEntities through a live server equal the model run directly through ONNX Runtime.

The direct computation uses the same ONNX file, tokenizer and post-processing, one request's rows in
the runs the idle server makes of them (one batch cut into runs of similar lengths, ``split_by_length``),
with one intra-op thread like the server under test, so results agree to float precision (dynamic int8
included: its scores depend on what a row runs with).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuneserve.encoding import Row, encode_texts
from tuneserve.inference import OnnxModel
from tuneserve.localstore import LocalModelStore
from tuneserve.server.batcher import RUN_OVERHEAD_TOKENS, split_by_length
from tuneserve.server.tasks import classify, ner
from tuneserve.v1 import inference_pb2, model_pb2

from .live import ServerProcess

TEXTS = [
    "A wonderful, heartfelt film.",
    "Dull and far too long.",
    "Zoë and Zoe\u0301 met Renée at the Café in Zürich.",
    "東京で山田太郎さんに会いました。",
    "Emoji 🎉🎉 party with 👩‍👩‍👧 in New York!",
    "tabs\tand   runs   of\t\tspaces  here",
    " ".join(["word"] * 200),  # longer than max_length: truncated
]
NER_TEXTS = [
    "John Smith works for Acme Corporation in London.",
    "Zoë and Zoe\u0301 met Renée Dupont at the Café de Flore in Paris.",
    "東京で山田太郎さんに会いました。 Maria García visited 北京.",
    "Emoji 🎉 party with Angela Merkel 👩‍👩‍👧 in New York!",
    "tabs\tJohn\t\tSmith   and   runs   of spaces   Berlin",
    " ".join(
        f"Person{i} visited Paris and met Anna Schmidt of Siemens AG." for i in range(12)
    ),  # many windows
]
AGGREGATIONS = {
    "simple": inference_pb2.AGGREGATION_STRATEGY_SIMPLE,
    "first": inference_pb2.AGGREGATION_STRATEGY_FIRST,
    "average": inference_pb2.AGGREGATION_STRATEGY_AVERAGE,
    "max": inference_pb2.AGGREGATION_STRATEGY_MAX,
}


def direct(store: Path, name: str) -> tuple[OnnxModel, list[str], bool, int]:
    version = LocalModelStore(store).open_version(name)
    m = version.manifest
    return (
        OnnxModel(version.path, m.onnx_file, m.max_length, intra_op_threads=1),
        m.labels,
        m.multi_label,
        m.max_length,
    )


def as_the_server_runs(model: OnnxModel, rows: list[Row]) -> list[np.ndarray]:
    """Each row's logits (cut to its tokens for NER), computed in the runs the server makes of one batch."""
    out: list[np.ndarray] = [np.empty(0)] * len(rows)
    for run in split_by_length([len(r.ids) for r in rows], RUN_OVERHEAD_TOKENS):
        logits = model.logits([rows[i] for i in run])
        for k, i in enumerate(run):
            out[i] = logits[k, : len(rows[i].ids)] if logits.ndim == 3 else logits[k]
    return out


@pytest.mark.parametrize("name", ["tiny-sentiment", "tiny-sentiment-int8"])
def test_classify_equals_direct_onnx(server: ServerProcess, model_store: Path, name: str) -> None:
    model, labels, multi_label, _ = direct(model_store, name)
    reply = server.inference.Classify(inference_pb2.ClassifyRequest(model=name, texts=TEXTS), timeout=30)
    assert reply.model == name and reply.version == 1
    rows = encode_texts(model.tokenizer, TEXTS)
    expected = classify.postprocess(np.stack(as_the_server_runs(model, rows)), rows, labels, multi_label)
    assert len(reply.results) == len(TEXTS)
    for got, want in zip(reply.results, expected, strict=True):
        assert [s.label for s in got.labels] == [s.label for s in want.labels]
        np.testing.assert_allclose([s.score for s in got.labels], [s.score for s in want.labels], atol=1e-6)
        assert got.truncated == want.truncated
    assert [r.truncated for r in reply.results] == [False] * 6 + [True]
    scores = [s.score for s in reply.results[0].labels]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5


def test_classify_top_k(server: ServerProcess) -> None:
    reply = server.inference.Classify(
        inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=TEXTS[:2], top_k=1)
    )
    assert all(len(r.labels) == 1 for r in reply.results)
    reply = server.inference.Classify(
        inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=TEXTS[:1], top_k=9)
    )
    assert len(reply.results[0].labels) == 2


def test_explicit_version_equals_serving(server: ServerProcess) -> None:
    a = server.inference.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=TEXTS[:2]))
    b = server.inference.Classify(
        inference_pb2.ClassifyRequest(model="tiny-sentiment", version=1, texts=TEXTS[:2])
    )
    assert a == b


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_extract_entities_equals_direct_onnx(
    server: ServerProcess, model_store: Path, aggregation: str
) -> None:
    model, labels, _, max_length = direct(model_store, "tiny-ner")
    request = inference_pb2.ExtractEntitiesRequest(
        model="tiny-ner", texts=NER_TEXTS, aggregation=AGGREGATIONS[aggregation]
    )
    reply = server.inference.ExtractEntities(request, timeout=30)
    assert reply.model == "tiny-ner" and len(reply.results) == len(NER_TEXTS)
    tokenizer = ner.window_tokenizer(model.tokenizer, max_length)
    words = LocalModelStore(model_store).open_version("tiny-ner").manifest.pretokenizer
    assert words == "tokenizer"
    windows = [ner.windows(tokenizer, t, max_length, pretokenizer=words) for t in NER_TEXTS]
    assert len(windows[-1]) > 3, "the long text must span several windows"
    rows = [ner.to_row(w) for ws in windows for w in ws]
    logits = as_the_server_runs(model, rows)  # the whole request, as the idle server runs it
    at, found = 0, 0
    for text, ws, got in zip(NER_TEXTS, windows, reply.results, strict=True):
        per_window = [logits[at + i] for i in range(len(ws))]
        at += len(ws)
        want = ner.extract(text, ws, per_window, labels, aggregation)
        assert [(e.label, e.text, e.start, e.end) for e in got.entities] == [
            (e.label, e.text, e.start, e.end) for e in want
        ]
        np.testing.assert_allclose([e.score for e in got.entities], [e.score for e in want], atol=1e-5)
        for e in got.entities:  # offsets are code points: the entity text is exactly the input substring
            assert text[e.start : e.end] == e.text and e.start < e.end
        assert all(a.end <= b.start for a, b in zip(got.entities, got.entities[1:], strict=False))
        assert not got.truncated
        found += len(got.entities)
    assert found, "the tiny model should tag something, or this test checks nothing"


def test_min_score_filters(server: ServerProcess) -> None:
    request = inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=NER_TEXTS[:3])
    everything = server.inference.ExtractEntities(request)
    scores = sorted(e.score for r in everything.results for e in r.entities)
    assert scores
    cut = scores[len(scores) // 2]
    request.min_score = cut
    some = server.inference.ExtractEntities(request)
    kept = [e.score for r in some.results for e in r.entities]
    assert kept and min(kept) >= cut - 1e-7 and len(kept) < len(scores) + 1


def test_model_service(server: ServerProcess) -> None:
    listed = server.models.ListModels(model_pb2.ListModelsRequest())
    assert [m.name for m in listed.models] == ["tiny-ner", "tiny-sentiment", "tiny-sentiment-int8"]
    assert not listed.next_page_token
    got = server.models.GetModel(model_pb2.GetModelRequest(name="tiny-sentiment-int8")).model
    assert got.serving_version == 1 and got.task == 1
    (v,) = got.versions
    assert v.serving and v.execution_provider == "CPUExecutionProvider"
    assert v.quantization == 1  # QUANTIZATION_INT8_DYNAMIC
    assert list(v.labels) == ["negative", "positive"] and v.max_length == 32 and v.created_at.seconds > 0
    assert "accuracy" in v.metrics
    assert v.lineage.base_model.source == "folder" and v.lineage.base_model.revision.startswith("sha256:")
    assert v.lineage.training_data.rows > 0 and len(v.lineage.validation_data.sha256) == 64
    assert v.lineage.device == "cpu" and v.lineage.world_size == 1 and not v.lineage.HasField("search")
    page = server.models.ListModels(model_pb2.ListModelsRequest(page_size=2))
    assert len(page.models) == 2 and page.next_page_token
    rest = server.models.ListModels(model_pb2.ListModelsRequest(page_size=2, page_token=page.next_page_token))
    assert [m.name for m in rest.models] == ["tiny-sentiment-int8"] and not rest.next_page_token


def test_streams_answer_in_order(server: ServerProcess) -> None:
    requests = [inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=[t]) for t in TEXTS]
    replies = list(server.inference.ClassifyStream(iter(requests), timeout=30))
    unary = [server.inference.Classify(r) for r in requests]
    assert len(replies) == len(requests)
    for got, want in zip(replies, unary, strict=True):
        assert [s.label for s in got.results[0].labels] == [s.label for s in want.results[0].labels]
        np.testing.assert_allclose(
            [s.score for s in got.results[0].labels], [s.score for s in want.results[0].labels], atol=1e-4
        )
    ner_requests = [inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=[t]) for t in NER_TEXTS[:3]]
    ner_replies = list(server.inference.ExtractEntitiesStream(iter(ner_requests), timeout=30))
    assert [
        r.results[0] == server.inference.ExtractEntities(q).results[0]
        for r, q in zip(ner_replies, ner_requests, strict=True)
    ] == [True] * 3


def test_no_torch_or_transformers_in_the_server(server: ServerProcess) -> None:
    """The live server (started with ``-X importtime``, which logs every import as it happens) has served
    both tasks and never imported torch or transformers; its memory maps hold no libtorch."""
    server.inference.Classify(inference_pb2.ClassifyRequest(model="tiny-sentiment", texts=["ok"]))
    server.inference.ExtractEntities(inference_pb2.ExtractEntitiesRequest(model="tiny-ner", texts=["ok"]))
    server.models.ListModels(model_pb2.ListModelsRequest())
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in list(server.lines) if line.startswith("import time:")
    }
    assert "onnxruntime" in imported and "tokenizers" in imported, "importtime output missing"
    top = {name.split(".")[0] for name in imported}
    assert not top & {"torch", "transformers", "optimum", "accelerate"}
    maps = Path(f"/proc/{server.pid}/maps").read_text()
    assert "libtorch" not in maps
