"""Export to ONNX: manifest, checksums, quality re-measured through ORT, atomic writes, int8 modes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import FIXTURES, ed25519_key_files, last_json, run_cli
from tuneserve import signing
from tuneserve.data import DataError
from tuneserve.encoding import encode_texts
from tuneserve.exporter.export import ExportConfig, export, int8_rejection
from tuneserve.exporter.quantize import FP32_FFN_OUTPUT_LAYERS
from tuneserve.inference import OnnxModel
from tuneserve.localstore import LocalModelStore
from tuneserve.repository import STALE_STAGING_S, IntegrityError, ModelNotFoundError

TEXTS = ["the movie was great", "our dinner was awful and the service slow", "ok", "a joy " * 20]


def _torch_logits(checkpoint: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            feeds = tok(text, return_tensors="pt", truncation=True, max_length=32)
            out.append(model(**feeds).logits[0].numpy())
    return np.stack(out)


def test_manifest_records_everything(model_store: Path) -> None:
    store = LocalModelStore(model_store)
    assert store.models() == ["tiny-ner", "tiny-sentiment", "tiny-sentiment-int8"]
    m = store.open_version("tiny-sentiment-int8").manifest
    assert (m.name, m.version, m.task, m.labels, m.max_length) == (
        "tiny-sentiment-int8",
        1,
        "classification",
        ["negative", "positive"],
        32,
    )
    assert m.onnx_file == "model_int8.onnx" and m.quantization.served == "int8-dynamic"
    # The portable default target, whatever CPU exported it: uint8 weights, no saturation on any x86-64.
    assert m.quantization.target == "avx2" and "avx2 target: uint8 weights" in m.quantization.method
    assert store.open_version("tiny-sentiment").manifest.quantization.target is None
    assert {"torch", "onnx_fp32", "onnx_int8", "served"} <= set(m.metrics)
    assert {"model.onnx", "model_int8.onnx", "tokenizer.json", "config.json", "training.json"} <= set(m.files)
    assert all(len(digest) == 64 for digest in m.files.values())
    assert {"torch", "transformers", "onnxruntime", "optimum"} <= set(m.package_versions)
    assert m.training["hyperparameters"]["learning_rate"] == 1e-3
    ner = store.open_version("tiny-ner").manifest
    assert ner.task == "ner" and ner.labels[0] == "O" and "entity_f1" in ner.metrics["onnx_fp32"]
    assert ner.pretokenizer == "tokenizer"  # served raw text is cut into words as training cut its words


def test_onnx_matches_pytorch(model_store: Path, trained: dict[str, Path]) -> None:
    expected = _torch_logits(trained["classification"], TEXTS)
    fp32 = LocalModelStore(model_store).open_version("tiny-sentiment")
    model = OnnxModel(fp32.path, fp32.manifest.onnx_file, 32)
    got = np.stack([model.logits(encode_texts(model.tokenizer, [t]))[0] for t in TEXTS])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    int8 = LocalModelStore(model_store).open_version("tiny-sentiment-int8")
    qmodel = OnnxModel(int8.path, int8.manifest.onnx_file, 32)
    qgot = np.stack([qmodel.logits(encode_texts(qmodel.tokenizer, [t]))[0] for t in TEXTS])
    np.testing.assert_allclose(qgot, expected, atol=0.05)


def test_dynamic_int8_quantizes_only_weight_matmuls_outside_the_head_and_gelu_output(
    model_store: Path,
) -> None:
    import onnx

    folder = LocalModelStore(model_store).open_version("tiny-sentiment-int8").path
    fp32 = onnx.load(str(folder / "model.onnx")).graph
    constants = {i.name for i in fp32.initializer} | {
        o for n in fp32.node if n.op_type == "Constant" for o in n.output
    }
    matmuls = [n for n in fp32.node if n.op_type == "MatMul"]
    two_activations = {n.name for n in matmuls if n.input[1] not in constants}
    after_gelu = {n.name for n in matmuls if "/output/dense/" in n.name and "attention" not in n.name}
    # 2 layers: Q.K and P.V each; both FFN outputs (FP32_FFN_OUTPUT_LAYERS is 2)
    assert len(two_activations) == 4 and len(after_gelu) == 2 == FP32_FFN_OUTPUT_LAYERS
    int8 = onnx.load(str(folder / "model_int8.onnx")).graph
    quantized = {n.name.removesuffix("_quant") for n in int8.node if n.op_type == "MatMulInteger"}
    plain = {n.name for n in int8.node if n.op_type == "MatMul"}
    assert quantized and not quantized & (two_activations | after_gelu)
    assert (two_activations | after_gelu) <= plain
    assert all("classifier" not in q and "pooler" not in q for q in quantized)


def test_fp32_metrics_equal_torch_metrics(model_store: Path) -> None:
    for name in ("tiny-sentiment", "tiny-ner"):
        metrics = LocalModelStore(model_store).open_version(name).manifest.metrics
        for key, value in metrics["torch"].items():
            assert metrics["onnx_fp32"][key] == pytest.approx(value, abs=1e-6), (name, key)


def test_static_int8_is_batch_invariant(trained: dict[str, Path], tmp_path: Path) -> None:
    result = export(
        ExportConfig(
            checkpoint=trained["classification"],
            model_root=tmp_path,
            name="s",
            int8_mode="static",
            tolerance=100,
        )
    )
    assert result.manifest.quantization.served == "int8-static"
    model = OnnxModel(result.path, result.manifest.onnx_file, 32)
    rows = encode_texts(model.tokenizer, TEXTS)
    alone = np.stack([model.logits([r])[0] for r in rows])
    together = model.logits(rows)
    np.testing.assert_allclose(together, alone, atol=1e-4)


@pytest.mark.parametrize("recorded", ["whitespace", None])
def test_the_recorded_pretokenizer_reaches_the_manifest(
    trained: dict[str, Path], fresh_copy, tmp_path: Path, recorded: str | None
) -> None:
    checkpoint = fresh_copy(trained["ner"])
    record = json.loads((checkpoint / "training.json").read_text())
    assert record["pretokenizer"] == "tokenizer"
    if recorded is None:
        del record["pretokenizer"]  # trained before the choice was recorded: on the data's own words
    else:
        record["pretokenizer"] = recorded
    (checkpoint / "training.json").write_text(json.dumps(record))
    result = export(ExportConfig(checkpoint=checkpoint, model_root=tmp_path, name="n", quantize="none"))
    assert result.manifest.pretokenizer == "whitespace"


def test_int8_rejection_rule() -> None:
    assert int8_rejection({"accuracy": 0.90}, {"accuracy": 0.895}, "accuracy", 1.0) is None
    reason = int8_rejection({"accuracy": 0.90}, {"accuracy": 0.88}, "accuracy", 1.0)
    assert reason and "lost 2.00 points" in reason and "serving fp32" in reason


def test_failed_export_leaves_nothing(trained: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "valid.tsv"
    bad.write_text("text\tlabel\nfine\tpositive\nodd\tneutral\n")
    with pytest.raises(DataError, match="neutral"):
        export(
            ExportConfig(
                checkpoint=trained["classification"], model_root=tmp_path / "m", name="x", validation=bad
            )
        )
    assert LocalModelStore(tmp_path / "m").versions("x") == []
    assert not list((tmp_path / "m" / "x").glob(".tmp-*"))


def test_killed_export_leaves_nothing_loadable(trained: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "m"
    cmd = [
        sys.executable,
        "-m",
        "tuneserve.cli",
        "export",
        str(trained["classification"]),
        "--model-root",
        str(root),
        "--name",
        "k",
        "--int8-mode",
        "static",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(root.glob("k/.tmp-*/model.onnx")) and time.monotonic() < deadline:
        time.sleep(0.05)
    store = LocalModelStore(root)
    (staged,) = root.glob("k/.tmp-*")
    # A live writer's folder is never removed, however old it is allowed to be.
    for _ in range(200):
        assert store.clean(older_than_s=0) == []
    assert proc.poll() is None and staged.is_dir()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert store.versions("k") == []
    with pytest.raises(ModelNotFoundError):
        store.open_version("k")
    assert store.clean() == []  # a dead writer's folder goes only once stale
    assert store.clean(older_than_s=0) == [staged]
    assert not list(root.glob("k/.tmp-*"))


def test_export_cleans_stale_staging_folders(trained: dict[str, Path], tmp_path: Path) -> None:
    dead = tmp_path / "k" / ".tmp-dead"
    dead.mkdir(parents=True)
    (dead / "model.onnx").write_bytes(b"x" * 1024)
    old = time.time() - STALE_STAGING_S - 1
    os.utime(dead, (old, old))
    run_cli("export", trained["classification"], "--model-root", tmp_path, "--name", "k", "--quantize=none")
    assert not dead.exists() and LocalModelStore(tmp_path).versions("k") == [1]


def test_signed_export_opens_only_with_its_public_key(trained: dict[str, Path], tmp_path: Path) -> None:
    _, private, public = ed25519_key_files(tmp_path)
    root = tmp_path / "m"
    args = ["export", trained["classification"], "--model-root", root, "--name", "s", "--int8-target"]
    run_cli(*args, "avx512-vnni", "--tolerance", "100", env={"TUNESERVE_SIGNING_KEY": str(private)})
    run_cli(*args, "avx512", "--tolerance", "100")  # unsigned
    store = LocalModelStore(root, verify_key=signing.load_public_key(public))
    m = store.open_version("s", 1).manifest
    assert m.quantization.target == "avx512-vnni" and "int8 weights" in m.quantization.method
    with pytest.raises(IntegrityError, match="is not signed"):
        store.open_version("s", 2)
    assert LocalModelStore(root).open_version("s", 2).manifest.quantization.target == "avx512"
    bad = run_cli(*args, "avx2", "--signing-key", public, check=False)
    assert bad.returncode == 1 and "Error: " in bad.stderr
    assert "not an unencrypted PEM private key" in bad.stderr


def test_export_cli_prints_the_version(trained: dict[str, Path], tmp_path: Path) -> None:
    out = last_json(
        run_cli(
            "export", trained["ner"], "--model-root", tmp_path, "--name", "n", "--quantize", "fp16"
        ).stdout
    )
    assert out["version"] == 1 and out["onnx_file"] == "model_fp16.onnx"
    manifest = json.loads((tmp_path / "n" / "1" / "manifest.json").read_text())
    assert manifest["providers"][0] == "CUDAExecutionProvider"
    assert FIXTURES.exists()
