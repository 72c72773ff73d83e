"""Quality metrics: accuracy and macro-F1 for classification, seqeval entity F1 for NER.

All values are fractions in [0, 1]. ``PRIMARY`` names the metric that selects checkpoints, gates
quantization and gates promotion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from seqeval.metrics import f1_score as entity_f1
from seqeval.metrics import precision_score, recall_score
from sklearn.metrics import accuracy_score, f1_score


def primary_metric(task: str, multi_label: bool = False) -> str:
    """The metric that decides: accuracy, micro-F1 (multi-label) or entity micro-F1 (NER)."""
    if task == "ner":
        return "entity_f1"
    return "micro_f1" if multi_label else "accuracy"


def classification_metrics(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> dict[str, float]:
    """``gold`` is class ids ``[N]`` (single-label) or a 0/1 matrix ``[N, labels]`` (multi-label)."""
    if multi_label:
        predicted = (logits > 0).astype(int)  # sigmoid(x) > 0.5
        return {
            "micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
            "exact_match": float(accuracy_score(gold, predicted)),
        }
    predicted = logits.argmax(axis=-1)
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
    }


def ner_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 (seqeval, IOB2) plus token accuracy."""
    gold_l, pred_l = [list(s) for s in gold], [list(s) for s in predicted]
    tokens = sum(len(s) for s in gold_l)
    correct = sum(g == p for gs, ps in zip(gold_l, pred_l, strict=True) for g, p in zip(gs, ps, strict=True))
    return {
        "entity_f1": float(entity_f1(gold_l, pred_l, zero_division=0)),
        "entity_precision": float(precision_score(gold_l, pred_l, zero_division=0)),
        "entity_recall": float(recall_score(gold_l, pred_l, zero_division=0)),
        "token_accuracy": correct / max(1, tokens),
    }
