"""Evaluate any model that maps a batch of rows to logits: PyTorch in training, ONNX Runtime in export.

Both go through the same tokenization and the same metrics, so their figures are comparable. NER is
scored on the words the model was trained and is served on (``pretokenizer``, see ``encoding.py``): with
``"tokenizer"`` an entity over ``U.S.`` is scored over ``U``, ``.``, ``S``, ``.``, still one entity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer

from tuneserve.data import TextExample, TokenExample
from tuneserve.encoding import Row, encode_texts, encode_words, first_token_positions, pretokenize
from tuneserve.quality import classification_metrics, ner_metrics

LogitsFn = Callable[[Sequence[Row]], np.ndarray]


def _batched_logits(logits_fn: LogitsFn, rows: Sequence[Row], batch_size: int) -> list[np.ndarray]:
    """Per-row logits, computed in batches of rows sorted by length (less padding)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
    out: list[np.ndarray] = [np.empty(0)] * len(rows)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = logits_fn([rows[i] for i in idx])
        for j, i in enumerate(idx):
            out[i] = logits[j, : len(rows[i].ids)] if logits.ndim == 3 else logits[j]
    return out


def gold_matrix(examples: Sequence[TextExample], labels: Sequence[str], multi_label: bool) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    if multi_label:
        gold = np.zeros((len(examples), len(labels)), dtype=int)
        for row, ex in enumerate(examples):
            for label in ex.labels:
                gold[row, index[label]] = 1
        return gold
    return np.array([index[ex.labels[0]] for ex in examples], dtype=int)


def evaluate_classification(
    logits_fn: LogitsFn,
    tokenizer: Tokenizer,
    examples: Sequence[TextExample],
    labels: Sequence[str],
    multi_label: bool,
    batch_size: int = 32,
) -> dict[str, float]:
    rows = encode_texts(tokenizer, [ex.text for ex in examples])
    logits = np.stack(_batched_logits(logits_fn, rows, batch_size))
    return classification_metrics(logits, gold_matrix(examples, labels, multi_label), multi_label)


def predict_word_tags(
    logits_fn: LogitsFn,
    tokenizer: Tokenizer,
    sentences: Sequence[Sequence[str]],
    labels: Sequence[str],
    max_length: int,
    batch_size: int = 32,
) -> list[list[str]]:
    """One predicted tag per word, read at each word's first sub-token (chunks reassembled)."""
    rows: list[Row] = []
    owner: list[int] = []
    for s, words in enumerate(sentences):
        chunk_rows = encode_words(tokenizer, words, max_length)
        rows.extend(chunk_rows)
        owner.extend([s] * len(chunk_rows))
    logits = _batched_logits(logits_fn, rows, batch_size)
    tags = [["O"] * len(words) for words in sentences]
    for row, row_logits, s in zip(rows, logits, owner, strict=True):
        for word, pos in first_token_positions(row).items():
            tags[s][word] = labels[int(row_logits[pos].argmax())]
    return tags


def evaluate_ner(
    logits_fn: LogitsFn,
    tokenizer: Tokenizer,
    examples: Sequence[TokenExample],
    labels: Sequence[str],
    max_length: int,
    batch_size: int = 32,
    pretokenizer: str = "tokenizer",
) -> dict[str, float]:
    """Entity metrics over the words of ``pretokenizer`` (``"tokenizer"`` or ``"whitespace"``)."""
    examples = pretokenize(tokenizer, examples, pretokenizer)
    predicted = predict_word_tags(
        logits_fn, tokenizer, [ex.tokens for ex in examples], labels, max_length, batch_size
    )
    return ner_metrics([ex.tags for ex in examples], predicted)


def evaluate(
    task: str,
    logits_fn: LogitsFn,
    tokenizer: Tokenizer,
    examples: Sequence[TextExample] | Sequence[TokenExample],
    labels: Sequence[str],
    *,
    multi_label: bool = False,
    max_length: int,
    batch_size: int = 32,
    pretokenizer: str = "tokenizer",
) -> dict[str, float]:
    """The metrics of ``task`` for ``examples`` (NER: over the words of ``pretokenizer``)."""
    if task == "ner":
        return evaluate_ner(logits_fn, tokenizer, examples, labels, max_length, batch_size, pretokenizer)
    return evaluate_classification(
        logits_fn,
        tokenizer,
        examples,
        labels,
        multi_label,
        batch_size,
    )
