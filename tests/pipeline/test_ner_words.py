"""Train → export → serve: NER words holding punctuation come back as exactly the words trained on."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import pytest

from tuneserve.exporter.export import ExportConfig, export
from tuneserve.inference import OnnxModel
from tuneserve.server.tasks import ner
from tuneserve.trainer.train import TrainConfig, train

USERS = ["@alice", "@bob", "@zoe", "@max"]
TAGS = ["#paris", "#music", "#ai", "#food"]
PLACES = ["New-York", "U.S.", "Rio-de-Janeiro", "Baden-Baden"]
CITIES = ["London", "Paris", "Berlin", "Rome"]


def social_data(path: Path) -> Path:
    """Tweets with the punctuation inside their words, and CoNLL-style sentences with it split off."""
    lines = []
    for i, (user, tag, place) in enumerate(product(USERS, TAGS, PLACES)):
        if i % 3:
            continue
        words = {"tokens": ["RT", user, "loving", tag, "in", place, "!"]}
        lines.append({**words, "tags": ["O", "B-PER", "O", "B-MISC", "O", "B-LOC", "O"]})
        words = {"tokens": ["we", "visited", CITIES[i % 4], ".", "with", user]}
        lines.append({**words, "tags": ["O", "O", "B-LOC", "O", "O", "B-PER"]})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def social_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxModel, list[str]]:
    """A tiny model that learnt the social data by heart, trained and exported with the defaults."""
    tmp = tmp_path_factory.mktemp("social")
    data = social_data(tmp / "social.jsonl")
    config = TrainConfig(
        task="ner",
        train=data,
        validation=data,
        output=tmp / "checkpoint",
        base=str(tiny_base),
        epochs=8,
        batch_size=8,
        max_length=32,
        learning_rate=1e-2,
        early_stopping_patience=0,
        progress_bar=False,
    )
    assert train(config).metrics["entity_f1"] == 1.0
    result = export(ExportConfig(checkpoint=tmp / "checkpoint", model_root=tmp / "models", name="social"))
    m = result.manifest
    assert m.pretokenizer == "tokenizer" and m.metrics["served"]["entity_f1"] == 1.0
    return OnnxModel(result.path, m.onnx_file, m.max_length), m.labels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "RT @zoe loving #food in Baden-Baden!",
            [("PER", "@zoe"), ("MISC", "#food"), ("LOC", "Baden-Baden")],
        ),
        ("RT @bob loving #ai in U.S.!", [("PER", "@bob"), ("MISC", "#ai"), ("LOC", "U.S.")]),
        ("we visited London. with @max", [("LOC", "London"), ("PER", "@max")]),
    ],
)
def test_raw_text_gives_the_entities_trained_on(
    social_model: tuple[OnnxModel, list[str]], text: str, expected: list[tuple[str, str]]
) -> None:
    model, labels = social_model
    windows = ner.windows(model.tokenizer, text, model.max_length, pretokenizer="tokenizer")
    logits = [model.logits([ner.to_row(w)])[0] for w in windows]
    entities = ner.extract(text, windows, logits, labels, "first")
    assert [(e.label, e.text) for e in entities] == expected
    assert all(text[e.start : e.end] == e.text for e in entities)
