"""A byte-order mark at the start of any line (files concatenated, lines pasted from other files) is
stripped by every reader, as readers of real-world files do."""

from __future__ import annotations

from pathlib import Path

from tuneserve.data import read_classification, read_ner

BOM = "\ufeff"


def test_conll_with_a_bom_on_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text(
        f"{BOM}-DOCSTART- O\n\n{BOM}Ann B-PER\nruns O\n\n{BOM}Bob B-PER\n{BOM}\nx O\n", encoding="utf-8"
    )
    examples = read_ner(path)
    assert [ex.tokens for ex in examples] == [("Ann", "runs"), ("Bob",), ("x",)]
    assert [ex.tags for ex in examples] == [("B-PER", "O"), ("B-PER",), ("O",)]


def test_jsonl_and_tsv_with_a_bom_on_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        f'{BOM}{{"text": "good", "label": "pos"}}\n{BOM}{{"text": "bad", "label": "neg"}}\n', encoding="utf-8"
    )
    assert [(ex.text, ex.labels) for ex in read_classification(jsonl)] == [
        ("good", ("pos",)),
        ("bad", ("neg",)),
    ]
    tsv = tmp_path / "d.tsv"
    tsv.write_text(f"{BOM}text\tlabel\n{BOM}good\tpos\nbad\tneg\n", encoding="utf-8")
    assert [(ex.text, ex.labels) for ex in read_classification(tsv)] == [
        ("good", ("pos",)),
        ("bad", ("neg",)),
    ]
    ner = tmp_path / "n.jsonl"
    ner.write_text(f'{BOM}{{"tokens": ["Ann"], "tags": ["B-PER"]}}\n', encoding="utf-8")
    assert read_ner(ner)[0].tokens == ("Ann",)
