"""Read and validate training data, failing fast with file, line and what is wrong.

Classification (`read_classification`), chosen by extension:

- ``.tsv``: header row, cells split on tabs (no quoting, as in GLUE; a text cannot contain a tab).
- ``.csv``: header row, read with the `csv` module (RFC 4180 quoting; fields may span lines).
- ``.jsonl`` / ``.json``: one JSON object per line (JSON Lines, not one JSON array).

NER (`read_ner`): ``.jsonl`` / ``.json`` objects with ``tokens`` and ``tags`` (alias ``ner_tags``);
any other file is CoNLL text (token first, tag last, blank line between sentences, ``-DOCSTART-`` skipped).
Tags in IOB2, IOB1 or IOBES are normalised to IOB2. Words never hold whitespace (no served text can): a
JSONL token with whitespace in it (``"New York"``) becomes one word per part, the later ones continuing
its entity (``B-LOC`` → ``B-LOC``, ``I-LOC``; `split_tokens`). Training may cut words further, at the
tokenizer's pre-tokenizer (``tuneserve.encoding.pretokenize``).

Files are read as bytes and decoded line by line as UTF-8; a byte-order mark at the start of the file or of
any line (files concatenated, lines pasted) is dropped. Every problem
raises `DataError`, whose ``str()`` is ``PATH:LINE: message``.
"""

import codecs
import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DataError",
    "TextExample",
    "TokenExample",
    "check_validation_labels",
    "label_set_classification",
    "label_set_ner",
    "read_classification",
    "read_ner",
]

PathLike = str | os.PathLike[str]

_JSON_SUFFIXES = frozenset({".jsonl", ".json"})
_TABLE_SUFFIXES = frozenset({".tsv", ".csv"})
_TAG_RE = re.compile(r"([BIES])-(\S+)")
_INT_RE = re.compile(r"-?[0-9]+")
_TAG_EXPECTED = "expected 'O' or B-, I-, E- or S- followed by an entity type, e.g. 'B-PER'"


class DataError(ValueError):
    """A problem in a data file: str() is 'PATH:LINE: message' (LINE omitted when not applicable)."""

    def __init__(self, path: PathLike, message: str, line: int | None = None) -> None:
        self.path: str = os.fspath(path)
        self.line: int | None = line
        self.message: str = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.message, self.line))


@dataclass(frozen=True)
class TextExample:
    """One classification example; `labels` has exactly one entry for single-label data."""

    text: str
    labels: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class TokenExample:
    """One NER sentence with IOB2 tags; `line` is where the sentence starts."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


# ---------------------------------------------------------------- reading lines


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory; expected a data file") from None
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(path, "file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8", 1)
    return data


def _lines(path: Path, data: bytes) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without line ending nor leading BOM), decoding each line as UTF-8."""
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                path,
                f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line); "
                "the file must be encoded as UTF-8",
                number,
            ) from None
        yield number, text.removesuffix("\r").removeprefix("\ufeff")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _json_objects(path: Path, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, object) for every non-blank line of a JSON Lines file."""
    for number, line in _lines(path, data):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                path, f"invalid JSON ({e.msg} at column {e.colno}); expected one JSON object per line", number
            ) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected one JSON object per line, found {_json_type(obj)}", number)
        yield number, obj


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _preview(items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# ---------------------------------------------------------------- classification


def read_classification(
    path: PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    multi_label: bool = False,
    label_separator: str = "|",
) -> list[TextExample]:
    """Read a .tsv, .csv or .jsonl/.json classification file; labels are kept as stripped strings.

    With `multi_label`, TSV/CSV label cells (and JSONL label strings) are split on `label_separator`
    and may be empty. In JSONL a list label means multi-label even without `multi_label`; then every
    line must use a list.
    """
    if not label_separator:
        raise ValueError("label_separator must not be empty")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _TABLE_SUFFIXES | _JSON_SUFFIXES:
        raise DataError(
            p,
            f"unsupported extension {suffix or '(none)'!r} for classification data; "
            "expected .tsv, .csv, .jsonl or .json",
        )
    data = _read_bytes(p)
    if suffix in _TABLE_SUFFIXES:
        examples = _read_table(p, data, suffix, text_column, label_column, multi_label, label_separator)
    else:
        examples = _read_text_jsonl(p, data, text_column, label_column, multi_label, label_separator)
    if not examples:
        raise DataError(p, "no examples (the file is empty or has only a header row)")
    return examples


def _rows(path: Path, data: bytes, suffix: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (start line, cells) per record of a TSV or CSV file."""
    if suffix == ".tsv":
        for number, line in _lines(path, data):
            yield number, line.split("\t")
        return
    consumed = 0

    def feed() -> Iterator[str]:
        nonlocal consumed
        for number, line in _lines(path, data):
            consumed = number
            yield line + "\n"

    reader = csv.reader(feed(), strict=True)
    while True:
        start = consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(
                path,
                f"malformed CSV ({e}); quote fields that contain commas, quotes or line breaks, "
                'doubling quotes inside them ("")',
                start,
            ) from None
        yield start, row


def _column(path: Path, header: list[str], name: str, line: int, delimiter: str) -> int:
    if header.count(name) > 1:
        raise DataError(path, f"column {name!r} appears more than once in the header", line)
    if name in header:
        return header.index(name)
    hint = ""
    if len(header) == 1:
        other = next((d for d in ("\t", ",", ";") if d != delimiter and d in header[0]), None)
        if other:
            hint = (
                f" (the header has a single column; is the file separated by {other!r}, not {delimiter!r}?)"
            )
    raise DataError(
        path, f"no column {name!r} in the header; the columns are: {_preview(header)}{hint}", line
    )


def _split_labels(path: Path, cell: str, separator: str, where: str, line: int) -> tuple[str, ...]:
    cell = cell.strip()
    if not cell:
        return ()
    parts = [part.strip() for part in cell.split(separator)]
    if not all(parts):
        raise DataError(
            path, f"empty label in {cell!r} ({where}); expected labels separated by {separator!r}", line
        )
    return tuple(dict.fromkeys(parts))


def _read_table(
    path: Path, data: bytes, suffix: str, text_column: str, label_column: str, multi_label: bool, sep: str
) -> list[TextExample]:
    delimiter = "\t" if suffix == ".tsv" else ","
    header: list[str] | None = None
    text_i = label_i = 0
    out: list[TextExample] = []
    for line, row in _rows(path, data, suffix):
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            text_i = _column(path, header, text_column, line, delimiter)
            label_i = _column(path, header, label_column, line, delimiter)
            continue
        if len(row) != len(header):
            hint = "a text must not contain a tab" if suffix == ".tsv" else "quote texts that contain commas"
            raise DataError(
                path, f"{_count(len(row), 'field')}, but the header has {len(header)} ({hint})", line
            )
        text = row[text_i]
        if not text.strip():
            raise DataError(path, f"empty text in column {text_column!r}", line)
        where = f"column {label_column!r}"
        if multi_label:
            labels = _split_labels(path, row[label_i], sep, where, line)
        else:
            label = row[label_i].strip()
            if not label:
                raise DataError(path, f"empty label in {where}; expected a label name or integer id", line)
            labels = (label,)
        out.append(TextExample(text, labels, line))
    return out


def _scalar_label(path: Path, value: object, where: str, line: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(path, f"{where} is {_json_type(value)}; expected a string or an integer", line)
    label = value.strip()
    if not label:
        raise DataError(path, f"empty label in {where}; expected a label name or integer id", line)
    return label


def _read_text_jsonl(
    path: Path, data: bytes, text_column: str, label_column: str, multi_label: bool, sep: str
) -> list[TextExample]:
    out: list[TextExample] = []
    first_list: int | None = None  # line of the first list label (without multi_label)
    first_scalar: int | None = None
    for line, obj in _json_objects(path, data):
        for key in (text_column, label_column):
            if key not in obj:
                raise DataError(path, f"missing key {key!r}; the object has keys: {_preview(obj)}", line)
        text, value = obj[text_column], obj[label_column]
        if not isinstance(text, str):
            raise DataError(path, f"key {text_column!r} is {_json_type(text)}; expected a string", line)
        if not text.strip():
            raise DataError(path, f"empty text in key {text_column!r}", line)
        where = f"key {label_column!r}"
        if isinstance(value, list):
            if not multi_label and first_scalar is not None:
                raise DataError(
                    path,
                    f"{where} is a list, but line {first_scalar} has a single label; "
                    "use a list on every line for multi-label data",
                    line,
                )
            first_list = first_list or line
            items = [_scalar_label(path, v, f"an element of {where}", line) for v in value]
            labels = tuple(dict.fromkeys(items))
        elif multi_label:
            if isinstance(value, str):
                labels = _split_labels(path, value, sep, where, line)
            else:
                labels = (_scalar_label(path, value, where, line),)
        else:
            if first_list is not None:
                raise DataError(
                    path,
                    f"{where} is {_json_type(value)}, but line {first_list} has a list of labels; "
                    "use a list on every line for multi-label data",
                    line,
                )
            first_scalar = first_scalar or line
            labels = (_scalar_label(path, value, where, line),)
        out.append(TextExample(text, labels, line))
    return out


def read_examples(
    task: str,
    path: PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    multi_label: bool = False,
) -> list[TextExample] | list[TokenExample]:
    """Read ``path`` as ``task`` ("classification" or "ner") needs it."""
    if task == "ner":
        return read_ner(path)
    if task == "classification":
        return read_classification(
            path, text_column=text_column, label_column=label_column, multi_label=multi_label
        )
    raise ValueError(f"unknown task {task!r}: use classification or ner")


def label_set_classification(examples: Iterable[TextExample]) -> list[str]:
    """Sorted unique labels; in numeric order when all are integers ("2" before "10")."""
    labels = {label for ex in examples for label in ex.labels}
    if labels and all(_INT_RE.fullmatch(label) for label in labels):
        return sorted(labels, key=lambda label: (int(label), label))
    return sorted(labels)


# ---------------------------------------------------------------- NER


class _BadTag(Exception):
    def __init__(self, index: int, tag: str) -> None:
        super().__init__(index, tag)
        self.index, self.tag = index, tag


def _to_iob2(tags: Sequence[str]) -> tuple[str, ...]:
    """Normalise IOB2, IOB1 or IOBES tags to IOB2; raise _BadTag for a tag of unknown shape."""
    out: list[str] = []
    open_type: str | None = None  # entity type that an I- tag may continue
    for index, tag in enumerate(tags):
        if tag == "O":
            out.append(tag)
            open_type = None
            continue
        match = _TAG_RE.fullmatch(tag)
        if match is None:
            raise _BadTag(index, tag)
        prefix, kind = match.groups()
        if prefix in "IE" and open_type == kind:
            out.append(f"I-{kind}")
        else:  # B-, S-, or an I-/E- that starts an entity
            out.append(f"B-{kind}")
        open_type = kind if prefix in "BI" else None
    return tuple(out)


def read_ner(path: PathLike) -> list[TokenExample]:
    """Read NER sentences from a .jsonl/.json file (tokens, tags) or a CoNLL file (token ... tag)."""
    p = Path(path)
    data = _read_bytes(p)
    examples = _read_ner_jsonl(p, data) if p.suffix.lower() in _JSON_SUFFIXES else _read_conll(p, data)
    if not examples:
        raise DataError(p, "no sentences (the file is empty)")
    return examples


def _read_conll(path: Path, data: bytes) -> list[TokenExample]:
    out: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if not tokens:
            return
        try:
            iob2 = _to_iob2(tags)
        except _BadTag as e:
            raise DataError(path, f"invalid tag {e.tag!r}; {_TAG_EXPECTED}", start + e.index) from None
        out.append(TokenExample(tuple(tokens), iob2, start))
        tokens.clear()
        tags.clear()

    for line, text in _lines(path, data):
        columns = text.split()
        if not columns or columns[0] == "-DOCSTART-":
            flush()
            continue
        if len(columns) == 1:
            raise DataError(
                path,
                f"only one column ({columns[0]!r}); expected a token and a tag separated by "
                "whitespace ('TOKEN TAG' or 'TOKEN POS CHUNK TAG', tag last)",
                line,
            )
        if not tokens:
            start = line
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    return out


def _string_list(path: Path, obj: dict[str, Any], key: str, line: int, what: str) -> list[str]:
    value = obj[key]
    if not isinstance(value, list):
        raise DataError(path, f"key {key!r} is {_json_type(value)}; expected a list of {what} strings", line)
    for i, item in enumerate(value):
        if isinstance(item, str):
            continue
        hint = (
            " (integer tag ids need the dataset's tag names; write tags as strings)" if what == "tag" else ""
        )
        raise DataError(
            path,
            f"{what} {i} in {key!r} is {_json_type(item)}; expected a string like "
            f"{'B-PER' if what == 'tag' else 'Paris'!r}{hint}",
            line,
        )
    return value


def _read_ner_jsonl(path: Path, data: bytes) -> list[TokenExample]:
    out: list[TokenExample] = []
    for line, obj in _json_objects(path, data):
        tag_key = next((k for k in ("tags", "ner_tags") if k in obj), None)
        if "tokens" not in obj or tag_key is None:
            missing = "'tokens'" if "tokens" not in obj else "'tags' (or 'ner_tags')"
            raise DataError(path, f"missing key {missing}; the object has keys: {_preview(obj)}", line)
        tokens = _string_list(path, obj, "tokens", line, "token")
        tags = _string_list(path, obj, tag_key, line, "tag")
        if len(tokens) != len(tags):
            raise DataError(
                path,
                f"{_count(len(tokens), 'token')} but {_count(len(tags), 'tag')} in {tag_key!r}; "
                "expected one tag per token",
                line,
            )
        for i, token in enumerate(tokens):
            if not token.strip():
                raise DataError(path, f"empty token at position {i} in 'tokens'", line)
        if not tokens:
            continue  # an empty sentence carries nothing to learn; skip it like a blank line
        try:
            iob2 = _to_iob2(tags)
        except _BadTag as e:
            raise DataError(
                path, f"invalid tag {e.tag!r} at position {e.index} in {tag_key!r}; {_TAG_EXPECTED}", line
            ) from None
        out.append(split_tokens(TokenExample(tuple(tokens), iob2, line), str.split))
    return out


def split_tokens(example: TokenExample, split: Callable[[str], Sequence[str]]) -> TokenExample:
    """``example`` with each token cut into ``split(token)``: the first piece keeps the token's IOB2 tag,
    the later ones continue its entity (``B-X`` → ``B-X``, ``I-X``...; ``O`` stays ``O``), so the
    entities are the same. A token ``split`` cuts into nothing stays whole."""
    tokens: list[str] = []
    tags: list[str] = []
    for token, tag in zip(example.tokens, example.tags, strict=True):
        parts = list(split(token)) or [token]
        tokens += parts
        tags += [tag, *[tag if tag == "O" else f"I-{tag[2:]}"] * (len(parts) - 1)]
    return TokenExample(tuple(tokens), tuple(tags), example.line)


def label_set_ner(examples: Iterable[TokenExample]) -> list[str]:
    """'O' first, then B-X and I-X for each entity type X in sorted order."""
    kinds = {tag[2:] for ex in examples for tag in ex.tags if tag != "O"}
    return ["O"] + [f"{prefix}-{kind}" for kind in sorted(kinds) for prefix in "BI"]


# ---------------------------------------------------------------- validation


def check_validation_labels(
    path: PathLike, validation: Iterable[TextExample | TokenExample], known: Sequence[str]
) -> None:
    """Raise DataError at the first validation label (or NER entity type) that is not in `known`.

    For NER, `known` holds tags (``B-PER``...) or bare entity types; CoNLL errors point at the token's line.
    """
    known_labels = set(known)
    known_kinds = {m.group(2) if (m := _TAG_RE.fullmatch(k)) else k for k in known if k != "O"}
    conll = Path(path).suffix.lower() not in _JSON_SUFFIXES  # CoNLL: one token per line
    for ex in validation:
        if isinstance(ex, TokenExample):
            for i, tag in enumerate(ex.tags):
                kind = tag[2:] if tag != "O" else None
                if kind is not None and kind not in known_kinds:
                    raise DataError(
                        path,
                        f"entity type {kind!r} (tag {tag!r} on token {ex.tokens[i]!r}) is not in the "
                        f"training data; known types: {_preview(sorted(known_kinds))}",
                        ex.line + i * conll,
                    )
        else:
            for label in ex.labels:
                if label not in known_labels:
                    raise DataError(
                        path,
                        f"label {label!r} is not in the training data; known labels: {_preview(known)}",
                        ex.line,
                    )
