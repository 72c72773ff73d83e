"""Token classification (NER) post-processing: overlapping windows over long texts, and entity merging.

Windows: the tokenizer itself (truncation with ``stride``, then the overflowing encodings) splits a text
into rows of at most ``max_length`` tokens, consecutive windows sharing ``stride`` tokens. Each token of
the text is read from exactly one window, the one where it lies farthest from an edge (an overlap is cut
in its middle), so the merged token sequence is the whole text once: nothing is lost or duplicated at a
window edge, and an entity across an edge comes out as one entity.

Aggregation has the meaning of the transformers token-classification pipeline's strategies:

- ``simple``: each token takes its argmax tag; runs of B-/I- tokens of one type become entities;
  score = mean of the tokens' scores.
- ``first`` / ``average`` / ``max``: each word takes the tag of its first sub-token / the argmax of its
  sub-tokens' averaged probabilities / the tag of its most confident sub-token; words are then grouped
  like tokens in ``simple``, so entities start and end on word boundaries; score = mean of word scores.

An I-X after O or after another type starts a new entity, as B-X does; O is never an entity.

Words are those training saw, named by the manifest's ``pretokenizer``. ``"tokenizer"`` (the default,
and manifests without the field): the tokenizer's own words (its pre-tokenizer, via ``word_ids``), which
split at punctuation as well as whitespace; training cuts its words the same way and spreads each tag
over the pieces, so ``@user`` is ``@`` (B-PER) ``user`` (I-PER) and comes back as the entity ``@user``,
while ``London.`` is ``London`` and ``.``. ``"whitespace"``: the text's whitespace-separated tokens,
encoded exactly as training encodes its CoNLL/JSONL tokens, so an entity spans whole whitespace words,
punctuation attached included (for text pre-tokenized like the training data).

Offsets: ``start``/``end`` count Unicode code points (Python ``str`` indices; the ``tokenizers`` Python
offsets already do), end exclusive, and ``text == input[start:end]`` always. An entity's end is moved
past combining marks that directly follow it (the U+0301 of "Zoe\\u0301", which BERT's normaliser drops
from the token), so a span never cuts a letter from its accents.

Hand-written rather than taken from transformers, because importing its pipelines pulls in torch, and
the serving process must never import torch or transformers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding, Tokenizer

from tuneserve.encoding import Row, split_words
from tuneserve.server.tasks.classify import softmax

AGGREGATIONS = ("simple", "first", "average", "max")

# How a word's [sub-tokens, labels] probabilities become one probability vector.
_WORD_VECTOR: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "first": lambda p: p[0],
    "average": lambda p: p.mean(axis=0),
    "max": lambda p: p[int(p.max(axis=1).argmax())],
}


@dataclass(frozen=True)
class Entity:
    """A span of the input: ``text == input[start:end]``, offsets in code points, end exclusive."""

    label: str
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Window:
    """One model input row over part of a text.

    ``offsets`` are code-point offsets into the whole text ((0, 0) for special tokens) and ``word_ids``
    index the words of the whole text, so both agree across windows. Row positions
    ``keep_from:keep_to`` are the tokens whose predictions this window contributes; ``first_token`` is
    the index of the token at ``keep_from`` in the whole text's token sequence (special tokens excluded).
    """

    ids: list[int]
    type_ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    first_token: int
    keep_from: int
    keep_to: int


@dataclass(frozen=True)
class _Unit:
    """A token (``simple``) or a word (other strategies) with its tag and score."""

    label: int
    score: float
    start: int
    end: int


def default_stride(tokenizer: Tokenizer, max_length: int) -> int:
    """The overlap used when none is given: a quarter of the window, and less than its content."""
    return max(0, min(max_length // 4, _budget(tokenizer, max_length) - 1))


def window_tokenizer(tokenizer: Tokenizer, max_length: int, stride: int | None = None) -> Tokenizer:
    """A copy of ``tokenizer`` set up for :func:`windows` (build it once per model: copying costs ms).

    The original is left unchanged, so it stays safe to share between threads.
    """
    stride = _stride(tokenizer, max_length, stride)
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.enable_truncation(max_length, stride=stride, strategy="longest_first", direction="right")
    return copy


def windows(
    tokenizer: Tokenizer,
    text: str,
    max_length: int,
    stride: int | None = None,
    pretokenizer: str = "tokenizer",
) -> list[Window]:
    """Split ``text`` into overlapping windows of at most ``max_length`` tokens (at least one window).

    ``stride`` is the overlap in tokens (default: :func:`default_stride`). A tokenizer from
    :func:`window_tokenizer` with the same settings is used as is; any other is copied and configured.
    ``pretokenizer`` is the manifest's: ``"tokenizer"`` or ``"whitespace"`` (see the module's docstring).
    """
    stride = _stride(tokenizer, max_length, stride)
    if not _is_windowing(tokenizer, max_length, stride):
        tokenizer = window_tokenizer(tokenizer, max_length, stride)
    if pretokenizer == "whitespace":
        spans = split_words(text)
        first = tokenizer.encode([text[a:b] for a, b in spans], is_pretokenized=True)
    elif pretokenizer == "tokenizer":
        spans, first = None, tokenizer.encode(text)
    else:
        raise ValueError(f"unknown pretokenizer {pretokenizer!r}; expected 'whitespace' or 'tokenizer'")
    encodings = [first, *first.overflowing]
    content = [_content(e) for e in encodings]
    # Global index of each window's first content token: consecutive windows share `stride` tokens.
    starts = [0]
    for lo, hi in content[:-1]:
        starts.append(starts[-1] + hi - lo - stride)
    total = starts[-1] + content[-1][1] - content[-1][0]
    cuts = [0, *(s + (stride + 1) // 2 for s in starts[1:]), total]
    return [
        Window(
            ids=e.ids,
            type_ids=e.type_ids,
            offsets=e.offsets if spans is None else _in_text(e, spans),
            word_ids=e.word_ids,
            first_token=cuts[k],
            keep_from=lo + cuts[k] - starts[k],
            keep_to=lo + cuts[k + 1] - starts[k],
        )
        for k, (e, (lo, _)) in enumerate(zip(encodings, content, strict=True))
    ]


def to_row(window: Window) -> Row:
    """The model input row for one window (for the batcher)."""
    return Row(list(window.ids), list(window.type_ids), list(window.word_ids), truncated=False)


def extract(
    text: str,
    windows: Sequence[Window],
    logits: Sequence[np.ndarray],
    labels: Sequence[str],
    aggregation: str = "first",
    min_score: float = 0.0,
) -> list[Entity]:
    """Entities of ``text`` from its windows and their ``[tokens, labels]`` logits (one array each).

    ``labels`` are IOB2 tags ("O", "B-PER", "I-PER", ...); ``aggregation`` is one of
    :data:`AGGREGATIONS` (case-insensitive). Entities scoring below ``min_score`` are dropped. The
    result is sorted by ``start``, without overlaps or duplicates.
    """
    strategy = aggregation.lower()
    if strategy not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")
    if len(logits) != len(windows):
        raise ValueError(f"got {len(logits)} logits arrays for {len(windows)} windows")
    parts: list[np.ndarray] = []
    offsets: list[tuple[int, int]] = []
    word_ids: list[int | None] = []
    for window, window_logits in zip(windows, logits, strict=True):
        array = np.asarray(window_logits)
        if array.ndim != 2 or array.shape[0] < len(window.ids) or array.shape[1] != len(labels):
            raise ValueError(
                f"logits of shape {array.shape} for a window of {len(window.ids)} tokens "
                f"and {len(labels)} labels"
            )
        parts.append(array[window.keep_from : window.keep_to])
        offsets += window.offsets[window.keep_from : window.keep_to]
        word_ids += window.word_ids[window.keep_from : window.keep_to]
    if not offsets:
        return []
    probs = softmax(np.concatenate(parts))
    if strategy == "simple":
        units = [_unit(p, *o) for p, o in zip(probs, offsets, strict=True)]
    else:
        units = _words(probs, offsets, word_ids, _WORD_VECTOR[strategy])
    return _entities(text, units, labels, min_score)


def _budget(tokenizer: Tokenizer, max_length: int) -> int:
    budget = max_length - int(tokenizer.num_special_tokens_to_add(False))
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text tokens")
    return budget


def _stride(tokenizer: Tokenizer, max_length: int, stride: int | None) -> int:
    budget = _budget(tokenizer, max_length)
    stride = default_stride(tokenizer, max_length) if stride is None else stride
    if not 0 <= stride < budget:
        raise ValueError(f"stride must be in [0, {budget}) for max_length {max_length}, got {stride}")
    return stride


def _is_windowing(tokenizer: Tokenizer, max_length: int, stride: int) -> bool:
    t = tokenizer.truncation
    return (
        tokenizer.padding is None
        and t is not None
        and t["max_length"] == max_length
        and t["stride"] == stride
        and t["direction"] == "right"
    )


def _in_text(encoding: Encoding, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Offsets of a pre-tokenized encoding (relative to each word) as offsets into the whole text."""
    return [
        (s, e) if w is None else (spans[w][0] + s, spans[w][0] + e)
        for (s, e), w in zip(encoding.offsets, encoding.word_ids, strict=True)
    ]


def _content(encoding: Encoding) -> tuple[int, int]:
    """Row positions ``[lo, hi)`` of the text tokens (not added by the post-processor)."""
    positions = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
    if not positions:
        return 0, 0
    lo, hi = positions[0], positions[-1] + 1
    if hi - lo != len(positions):
        raise ValueError("the tokenizer's post-processor puts special tokens inside the text")
    return lo, hi


def _unit(probs: np.ndarray, start: int, end: int) -> _Unit:
    k = int(probs.argmax())
    return _Unit(k, float(probs[k]), start, end)


def _words(
    probs: np.ndarray,
    offsets: list[tuple[int, int]],
    word_ids: list[int | None],
    vector: Callable[[np.ndarray], np.ndarray],
) -> list[_Unit]:
    """One unit per word: a run of tokens with the same word id (a token without one is its own word)."""
    units = []
    i, n = 0, len(word_ids)
    while i < n:
        j = i + 1
        if word_ids[i] is not None:
            while j < n and word_ids[j] == word_ids[i]:
                j += 1
        units.append(_unit(vector(probs[i:j]), offsets[i][0], offsets[j - 1][1]))
        i = j
    return units


def _entities(text: str, units: list[_Unit], labels: Sequence[str], min_score: float) -> list[Entity]:
    """Group units into entities (pipeline ``group_entities``), then fix spans and filter."""
    tags = [_tag(label) for label in labels]
    groups: list[list[_Unit]] = []
    for unit in units:
        bi, tag = tags[unit.label]
        if groups and bi != "B" and tag == tags[groups[-1][0].label][1]:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    entities: list[Entity] = []
    after = 0  # consumed units, to find where the next token starts
    for group in groups:
        after += len(group)
        name = labels[group[0].label].split("-", 1)[-1]
        score = sum(u.score for u in group) / len(group)
        if name == "O" or score < min_score:
            continue
        start, end = group[0].start, group[-1].end
        limit = units[after].start if after < len(units) else len(text)
        while end < limit and unicodedata.category(text[end]).startswith("M"):
            end += 1
        if entities:
            start = max(start, entities[-1].end)  # tokens sharing offsets (byte-level BPE) never overlap
        if start < end:
            entities.append(Entity(name, text[start:end], start, end, score))
    return entities


def _tag(label: str) -> tuple[str, str]:
    """``("B" | "I", type)``; a label without a B-/I- prefix continues like I- (as in the pipeline)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label
