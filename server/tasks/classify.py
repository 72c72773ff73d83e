"""Text classification post-processing: logits to sorted label scores, one result per text.

Single-label models get a softmax over the labels, multi-label models an independent sigmoid per label.
Hand-written rather than taken from the transformers text-classification pipeline, because importing
that pipeline pulls in torch, and the serving process must never import torch or transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from tuneserve.encoding import Row, encode_texts


@dataclass(frozen=True)
class LabelScore:
    """One label and its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class ClassResult:
    """The result for one text: labels by descending score, and whether the text was truncated."""

    labels: list[LabelScore]
    truncated: bool


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Row]:
    """One model input row per text, truncated at the tokenizer's maximum length (and flagged)."""
    rows: list[Row] = encode_texts(tokenizer, texts)
    return rows


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function in float64, without overflow for large magnitudes."""
    x = np.asarray(logits, dtype=np.float64)
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -x))
    return out


def postprocess(
    logits: np.ndarray, rows: Sequence[Row], labels: Sequence[str], multi_label: bool, top_k: int = 0
) -> list[ClassResult]:
    """Turn ``[n, labels]`` logits into one result per row.

    Scores are a softmax (single-label) or sigmoids (multi-label). Labels are sorted by score, highest
    first, ties keeping the model's label order; ``top_k`` keeps the best k (0: all labels).
    """
    logits = np.asarray(logits)
    if logits.shape != (len(rows), len(labels)):
        raise ValueError(f"logits have shape {logits.shape}, expected ({len(rows)}, {len(labels)})")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0: all labels), got {top_k}")
    probs = sigmoid(logits) if multi_label else softmax(logits)
    keep = top_k or len(labels)
    results = []
    for row, p in zip(rows, probs, strict=True):
        order = np.argsort(-p, kind="stable")[:keep]
        results.append(ClassResult([LabelScore(labels[i], float(p[i])) for i in order], row.truncated))
    return results
