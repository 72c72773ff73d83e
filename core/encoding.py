"""Tokenization with the Rust ``tokenizers`` library: one code path for training, evaluation and serving.

Texts are truncated to the model's maximum length (and flagged). Pre-split words (NER training data)
are packed into chunks that fit the maximum length: words past the limit start the next chunk, so no
word is ever dropped. The first sub-token of each word carries the word's label.

NER words come in two kinds, named by the manifest's ``pretokenizer`` (:data:`PRETOKENIZERS`):

- ``"tokenizer"`` (the default): the tokenizer's own words, as its normaliser and pre-tokenizer cut raw
  text (BERT: at whitespace and punctuation, around CJK characters). Training cuts each given word the
  same way (:func:`split_word`, :func:`pretokenize`), ``@user`` → ``@``, ``user``, the later pieces
  continuing the word's entity, so served raw text is read where training labelled it.
- ``"whitespace"``: the whitespace-separated words (:func:`split_words`), as CoNLL/JSONL hold them, for
  served text that is pre-tokenized exactly like the training data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from tokenizers import Encoding, PreTokenizedString, Tokenizer

from tuneserve.data import TokenExample, split_tokens

PRETOKENIZERS = ("tokenizer", "whitespace")
_WORD = re.compile(r"\S+")  # \s is str.isspace(), as in str.split()


def split_words(text: str) -> list[tuple[int, int]]:
    """Code-point spans ``(start, end)`` of the whitespace-separated words of ``text`` (``text.split()``)."""
    return [m.span() for m in _WORD.finditer(text)]


def split_word(tokenizer: Tokenizer, word: str) -> list[str]:
    """``word`` cut where the tokenizer cuts raw text into words: its normaliser, then its pre-tokenizer
    (BERT: ``@user`` → ``@``, ``user``; ``東京`` → ``東``, ``京``). The pieces join up to ``word``: a
    character the normaliser removes stays with the piece before it (``Zoe\u0301`` stays whole)."""
    pieces = PreTokenizedString(word)
    if tokenizer.normalizer is not None:
        pieces.normalize(tokenizer.normalizer.normalize)
    if tokenizer.pre_tokenizer is not None:
        tokenizer.pre_tokenizer.pre_tokenize(pieces)
    splits = pieces.get_splits(offset_referential="original", offset_type="char")
    cuts = [0, *[a for _, (a, _), _ in splits[1:]], len(word)]
    return [word[a:b] for a, b in pairwise(cuts)]


def pretokenize(
    tokenizer: Tokenizer, examples: Iterable[TokenExample], pretokenizer: str
) -> list[TokenExample]:
    """NER examples as words of ``pretokenizer`` (see the module docstring): with ``"tokenizer"`` each
    word is cut by :func:`split_word`, its tag spread over the pieces (``B-X`` → ``B-X``, ``I-X``...;
    ``O`` stays ``O``), so an entity stays one entity; ``"whitespace"`` keeps the words as they are."""
    if pretokenizer == "whitespace":
        return list(examples)
    if pretokenizer != "tokenizer":
        raise ValueError(f"unknown pretokenizer {pretokenizer!r}; expected one of {', '.join(PRETOKENIZERS)}")

    @cache
    def split(word: str) -> list[str]:
        return split_word(tokenizer, word)

    return [split_tokens(ex, split) for ex in examples]


@dataclass(frozen=True)
class Row:
    """One model input row (unpadded)."""

    ids: list[int]
    type_ids: list[int]
    word_ids: list[int | None]  # index of the word each token belongs to (None: special token)
    truncated: bool = False


def load_tokenizer(path: str | Path, max_length: int) -> Tokenizer:
    """Load ``tokenizer.json`` (a file or the folder holding it), truncating at ``max_length``."""
    path = Path(path)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _row(encoding: Encoding, word_offset: int = 0) -> Row:
    word_ids = [None if w is None else w + word_offset for w in encoding.word_ids]
    return Row(encoding.ids, encoding.type_ids, word_ids, truncated=bool(encoding.overflowing))


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Row]:
    """Encode raw texts, one row each, truncated at the tokenizer's maximum length."""
    return [_row(e) for e in tokenizer.encode_batch(list(texts))]


def encode_words(tokenizer: Tokenizer, words: Sequence[str], max_length: int) -> list[Row]:
    """Encode pre-split words in as many rows as needed; ``word_ids`` index into ``words``."""
    if not words:
        return []
    special = len(tokenizer.encode("").ids)
    budget = max(1, max_length - special)
    pieces = tokenizer.encode_batch([[w] for w in words], is_pretokenized=True, add_special_tokens=False)
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, piece in enumerate(pieces):
        n = max(1, len(piece.ids))
        if used and used + n > budget:
            chunks.append((start, i))
            start, used = i, 0
        used += n
    chunks.append((start, len(words)))
    encodings = tokenizer.encode_batch([list(words[a:b]) for a, b in chunks], is_pretokenized=True)
    return [_row(e, a) for e, (a, _) in zip(encodings, chunks, strict=True)]


def pad(rows: Sequence[Row], pad_id: int = 0) -> dict[str, np.ndarray]:
    """Pad rows to the longest one: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64)."""
    width = max(len(r.ids) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = r.ids
        mask[i, : len(r.ids)] = 1
        types[i, : len(r.ids)] = r.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def first_token_positions(row: Row) -> dict[int, int]:
    """Map each word index in ``row`` to the position of its first sub-token."""
    positions: dict[int, int] = {}
    for pos, word in enumerate(row.word_ids):
        if word is not None and word not in positions:
            positions[word] = pos
    return positions
