"""``DataPlane``: what every inference request goes through, whatever the protocol.

validation (into ``Valid*`` types) → model lookup → task check → admission by estimated cost (rows and
tokens from the texts' length, before tokenizing or windowing: the batcher refuses at once what would pass
its bounds or could not finish within the call's deadline) → tokenization (NER: windowing, stopped at
``max_windows_per_request``) → batcher → post-processing (``tasks/``). Raises only
``errors.TuneserveError`` subclasses for the caller's mistakes; anything else is a server bug.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
from tokenizers import Tokenizer

from tuneserve.server import tracing
from tuneserve.server.errors import InvalidInput
from tuneserve.server.metrics import answered_by
from tuneserve.server.registry import LoadedVersion, ModelRegistry
from tuneserve.server.settings import LimitSettings
from tuneserve.server.tasks import classify, ner

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TASK_RPC = {"classification": "Classify", "ner": "ExtractEntities"}
TASK_NAMES = {"classification": "text classification", "ner": "token classification (NER)"}
# Requests with more UTF-8 than this are tokenized in a thread rather than on the event loop.
_INLINE_TOKENIZE_BYTES = 4096
# For admission before tokenizing: about how many characters one token covers (English WordPiece text runs
# at 4 to 5; fewer errs towards refusing, which is the safe side under load).
CHARS_PER_TOKEN = 4
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ValidTexts:
    model: str
    version: int
    texts: list[str]


@dataclass(frozen=True)
class ValidClassify(ValidTexts):
    top_k: int


@dataclass(frozen=True)
class ValidExtract(ValidTexts):
    aggregation: str
    min_score: float


@dataclass(frozen=True)
class ClassifyOutput:
    model: str
    version: int
    results: list[classify.ClassResult]
    labels: tuple[str, ...] = ()  # the model's labels, in its own order


@dataclass(frozen=True)
class ExtractOutput:
    model: str
    version: int
    results: list[list[ner.Entity]]


class DataPlane:
    """Validation, lookup, admission and batching for Classify and ExtractEntities."""

    def __init__(self, registry: ModelRegistry, limits: LimitSettings) -> None:
        self.registry = registry
        self.limits = limits

    async def classify(
        self, model: str, version: int, texts: Sequence[str], top_k: int, timeout: float | None = None
    ) -> ClassifyOutput:
        if top_k < 0:
            raise InvalidInput(f"top_k is {top_k}: use 0 for all labels, or a positive number of labels")
        req = ValidClassify(*self._texts(model, version, texts), top_k=top_k)
        loaded = await self._lookup(req, "classification")
        deadline = _deadline(timeout)
        cost = classify_tokens(req.texts, loaded.runtime.max_length)
        with loaded.lease(), loaded.batcher.admit(len(req.texts), cost, deadline) as ticket:
            with tracing.span("tokenize", req.model, loaded.version, texts=len(req.texts)) as span:
                t0 = time.perf_counter()
                rows = await _maybe_in_thread(req.texts, classify.encode, loaded.runtime.tokenizer, req.texts)
                _tokenized(loaded, t0, sum(len(r.ids) for r in rows), span)
            logits = await loaded.batcher.submit(rows, deadline, ticket)
            m = loaded.runtime.manifest
            with tracing.span("postprocess", req.model, loaded.version):
                results = classify.postprocess(np.stack(logits), rows, m.labels, m.multi_label, req.top_k)
        return ClassifyOutput(req.model, loaded.version, results, tuple(m.labels))

    async def extract_entities(
        self,
        model: str,
        version: int,
        texts: Sequence[str],
        aggregation: str,
        min_score: float,
        timeout: float | None = None,
    ) -> ExtractOutput:
        strategy = aggregation.lower()
        if strategy not in ner.AGGREGATIONS:
            raise InvalidInput(
                f"unknown aggregation strategy {aggregation!r}: use SIMPLE, FIRST (the default), "
                "AVERAGE or MAX"
            )
        if not 0.0 <= min_score <= 1.0:  # NaN fails too
            raise InvalidInput(f"min_score is {min_score}: it must be in [0, 1] (0 keeps every entity)")
        req = ValidExtract(*self._texts(model, version, texts), aggregation=strategy, min_score=min_score)
        loaded = await self._lookup(req, "ner")
        deadline = _deadline(timeout)
        max_length = loaded.runtime.max_length
        rows, tokens = ner_cost(req.texts, max_length)
        with loaded.lease(), loaded.batcher.admit(rows, tokens, deadline) as ticket:
            tokenizer = loaded.window_tokenizer or loaded.runtime.tokenizer
            words, limit = loaded.runtime.manifest.pretokenizer, self.limits.max_windows_per_request
            with tracing.span("tokenize", req.model, loaded.version, texts=len(req.texts)) as span:
                t0 = time.perf_counter()
                windows = await _maybe_in_thread(
                    req.texts, _windows, tokenizer, req.texts, max_length, words, limit
                )
                flat = [ner.to_row(w) for ws in windows for w in ws]
                _tokenized(loaded, t0, sum(len(r.ids) for r in flat), span)
            logits = await loaded.batcher.submit(flat, deadline, ticket)
            labels = loaded.runtime.manifest.labels
            with tracing.span("postprocess", req.model, loaded.version):
                results = await _maybe_in_thread(
                    req.texts, _entities, req.texts, windows, logits, labels, strategy, min_score
                )
        return ExtractOutput(req.model, loaded.version, results)

    async def task(self, model: str, version: int = 0) -> str:
        """The task ("classification" or "ner") of the version a request for ``model`` would run on;
        ``ModelNotFound`` or ``ModelNotReady`` as for the request itself."""
        if version < 0:
            raise InvalidInput(
                f"version is {version}: use 0 for the serving version, or a positive version number"
            )
        return (await self.registry.get(model, version)).task

    def _texts(self, model: str, version: int, texts: Sequence[str]) -> tuple[str, int, list[str]]:
        if not model:
            raise InvalidInput(
                "model is required: the name of a served model (ModelService.ListModels lists them)"
            )
        if not _NAME.match(model):
            raise InvalidInput(
                f"model name {model[:80]!r} is not valid: names are 1 to 63 characters of a-z, 0-9, "
                "'.', '_' and '-', starting with a letter or digit"
            )
        if version < 0:
            raise InvalidInput(
                f"version is {version}: use 0 for the serving version, or a positive version number"
            )
        limit = self.limits.max_texts_per_request
        if not texts:
            raise InvalidInput(f"texts is empty: send between 1 and {limit} texts")
        if len(texts) > limit:
            raise InvalidInput(
                f"{len(texts)} texts in one request; at most {limit} are allowed: split the batch"
            )
        max_bytes = self.limits.max_text_bytes
        for i, text in enumerate(texts):
            if len(text) * 4 > max_bytes and (size := len(text.encode("utf-8", "surrogatepass"))) > max_bytes:
                raise InvalidInput(
                    f"texts[{i}] is {size} bytes of UTF-8; at most {max_bytes} bytes are allowed "
                    "per text: split it"
                )
            if not text or text.isspace():
                raise InvalidInput(
                    f"texts[{i}] is empty or only whitespace: every text needs at least one "
                    "non-whitespace character"
                )
            if (nul := text.find("\x00")) >= 0:
                raise InvalidInput(
                    f"texts[{i}] contains a NUL character (U+0000) at code point {nul}: texts may "
                    "not contain NUL; remove or replace it"
                )
        return model, version, list(texts)

    async def _lookup(self, req: ValidTexts, task: str) -> LoadedVersion:
        loaded = await self.registry.get(req.model, req.version)
        if loaded.task != task:
            raise InvalidInput(
                f"model {req.model!r} is a {TASK_NAMES[loaded.task]} model and cannot answer "
                f"{TASK_RPC[task]}: use {TASK_RPC[loaded.task]}"
            )
        answered_by(loaded.version)
        return loaded


def _tokenized(loaded: LoadedVersion, t0: float, tokens: int, span: object) -> None:
    """Account one request's tokenization, begun at ``t0`` (``perf_counter``), in metrics and its span."""
    loaded.batcher.observer.tokenized(time.perf_counter() - t0, tokens)
    if span is not None:
        span.set_attribute("tuneserve.input_tokens", tokens)  # type: ignore[attr-defined]


def classify_tokens(texts: Sequence[str], max_length: int) -> int:
    """Estimated tokens of a classification request (each text is cut at ``max_length``)."""
    return sum(min(max_length, 2 + len(t) // CHARS_PER_TOKEN) for t in texts)


def ner_cost(texts: Sequence[str], max_length: int) -> tuple[int, int]:
    """Estimated (windows, tokens) of an NER request, before windowing: a window holds about three
    quarters of ``max_length`` new tokens (a quarter overlaps the previous one)."""
    step = max(1, (max_length - 2) * 3 // 4)
    rows = tokens = 0
    for t in texts:
        estimate = 1 + len(t) // CHARS_PER_TOKEN
        windows = max(1, math.ceil((estimate - (max_length - 2)) / step) + 1)
        rows += windows
        tokens += min(max_length, estimate + 2) if windows == 1 else windows * max_length
    return rows, tokens


def _windows(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, pretokenizer: str, limit: int
) -> list[list[ner.Window]]:
    """The windows of each text; ``InvalidInput`` as soon as there are more than ``limit``."""
    out: list[list[ner.Window]] = []
    count = 0
    for i, text in enumerate(texts):
        out.append(ner.windows(tokenizer, text, max_length, pretokenizer=pretokenizer))
        count += len(out[-1])
        if count > limit:
            raise InvalidInput(
                f"the texts up to texts[{i}] already make {count} windows of {max_length} tokens; at most "
                f"{limit} are allowed per request: send fewer or shorter texts per call"
            )
    return out


def _entities(
    texts: Sequence[str],
    windows: Sequence[Sequence[ner.Window]],
    logits: Sequence[np.ndarray],
    labels: Sequence[str],
    strategy: str,
    min_score: float,
) -> list[list[ner.Entity]]:
    results: list[list[ner.Entity]] = []
    at = 0
    for text, ws in zip(texts, windows, strict=True):
        results.append(ner.extract(text, ws, logits[at : at + len(ws)], labels, strategy, min_score))
        at += len(ws)
    return results


async def _maybe_in_thread(texts: Sequence[str], fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Small requests are tokenized inline (a thread hop costs more); large ones in a thread."""
    if sum(len(t) for t in texts) <= _INLINE_TOKENIZE_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def _deadline(timeout: float | None) -> float | None:
    if timeout is None or math.isinf(timeout):
        return None
    return asyncio.get_running_loop().time() + timeout
