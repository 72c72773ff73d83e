"""README.md's code blocks, as the README test runs them.

A block is an example when the line right above its fence is ``<!-- test: KIND -->`` (KIND: ``grpcurl``,
``curl``, ``python``, ``go``, ``cli``) or ``<!-- test: skip (reason) -->``. Before a block runs,
``substitute`` points it at the live test server: the address ``localhost:50051`` or ``tuneserve:50051``
becomes the server's, and the model names ``sentiment`` and ``ner`` become the tiny models
``tiny-sentiment`` and ``tiny-ner``; in the ``curl`` examples (``substitute_http``), ``localhost:8080``
becomes the server's HTTP port and ``/v2/models/sentiment`` (or ``ner``) the tiny model's path. The CLI
examples find the server through ``TUNESERVE_SERVER``; in the Go set-up, ``/path/to/tuneserve`` is this
repository; the Train examples train the server's default base, the tiny test BERT
(``TUNESERVE_TRAINING__DEFAULT_BASE``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
# Languages whose every block must be marked: an unmarked new snippet fails the test.
CHECKED_LANGUAGES = ("sh", "python", "go", "java")
KINDS = ("grpcurl", "curl", "python", "go", "cli", "skip")

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- test: (\w+)(?: \((.+)\))? -->$")
_ADDRESS = re.compile(r"(?<![\w.-])(?:localhost|tuneserve):50051\b")
_MODEL = re.compile(r"(?<![\w./-])(sentiment|ner)(?![\w/-])")
_HTTP_ADDRESS = re.compile(r"(?<![\w.-])localhost:8080\b")
_HTTP_MODEL = re.compile(r"/v2/models/(sentiment|ner)\b")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, marker kind (None when unmarked), skip reason, text and line."""

    language: str
    kind: str | None
    reason: str | None
    text: str
    line: int


def blocks(readme: Path = README) -> list[Block]:
    """Every fenced block of ``readme``, in order (``line``: the opening fence's, from 1)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        kind, reason = (marker.group(1), marker.group(2)) if marker else (None, None)
        found.append(Block(fence.group(1), kind, reason, "\n".join(lines[i + 1 : end]) + "\n", i + 1))
        i = end + 1
    return found


def examples(kind: str, language: str | None = None) -> list[Block]:
    return [b for b in blocks() if b.kind == kind and (language is None or b.language == language)]


def substitute(text: str, target: str) -> str:
    """Point ``text`` at the test server ``target`` (host:port) and its tiny models."""
    return _MODEL.sub(r"tiny-\1", _ADDRESS.sub(target, text))


def substitute_http(text: str, target: str) -> str:
    """Point a ``curl`` example at the test server's HTTP port ``target`` (host:port) and its tiny models."""
    return _HTTP_MODEL.sub(r"/v2/models/tiny-\1", substitute(_HTTP_ADDRESS.sub(target, text), target))


def commands(text: str) -> list[str]:
    """The shell commands of a block: comment lines dropped, continued lines (``\\``, open quotes) joined."""
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.endswith("\\") and current.count("'") % 2 == 0:
            out.append(current)
            current = ""
    assert not current, f"unfinished command: {current}"
    return out


def json_objects(output: str) -> list[dict]:
    """The JSON objects of a command's output: one per line, or grpcurl's multi-line ones back to back."""
    decoder = json.JSONDecoder()
    objects, pos, text = [], 0, output.strip()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        objects.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return objects
