"""Every example of README.md runs against a live server (see readme.py for the markers and substitutions)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme

from helpers import FIXTURES
from tuneserve.v1 import model_pb2

from . import readme
from .live import ServerProcess

REPO = Path(__file__).parents[2]
JAVA_EXAMPLE = REPO / "clients/java/src/test/java/dev/tuneserve/ReadmeExampleTest.java"
TIMEOUT = 300


def grpcurl() -> Path | None:
    """grpcurl: $GRPCURL (`make test` builds it into .bin/), else .bin/grpcurl-*, else on PATH."""
    if os.environ.get("GRPCURL"):
        return Path(os.environ["GRPCURL"])
    built = sorted((REPO / ".bin").glob("grpcurl-*"))
    found = built[-1] if built else shutil.which("grpcurl")
    return Path(found) if found else None


@pytest.fixture()
def shell_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds `tuneserve` (this Python's) and grpcurl by their README names."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = grpcurl()
    if tool is not None:
        (bin_dir / "grpcurl").symlink_to(tool.resolve())
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path}


def run_shell(command: str, env: dict[str, str], cwd: Path) -> str:
    """Run one README command with bash; its stdout (it must succeed)."""
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{command}failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.stdout


def need_grpcurl() -> None:
    if grpcurl() is None:
        pytest.skip("grpcurl is absent: `make .bin/grpcurl-v1.9.3` (part of `make test`) builds it")


def test_every_snippet_is_marked() -> None:
    """A new sh, Python, Go or Java block fails here until it is marked as an example or skipped."""
    blocks = readme.blocks()
    unmarked = [
        f"README.md:{b.line} ```{b.language}"
        for b in blocks
        if b.language in readme.CHECKED_LANGUAGES and b.kind not in readme.KINDS
    ]
    assert not unmarked, "mark these blocks <!-- test: KIND --> or <!-- test: skip (reason) -->: " + str(
        unmarked
    )
    assert all(b.reason for b in blocks if b.kind == "skip"), "a skipped block says why"
    allowed = {"grpcurl": {"sh"}, "curl": {"sh"}, "cli": {"sh"}, "python": {"python"}, "go": {"sh", "go"}}
    for b in blocks:
        if b.kind in allowed:
            assert b.language in allowed[b.kind], f"README.md:{b.line}: a {b.kind} example in ```{b.language}"
    for kind in allowed:
        assert readme.examples(kind), f"no {kind} example is marked"


def test_markers_are_read_from_the_line_above_the_fence(tmp_path: Path) -> None:
    text = "<!-- test: skip (why) -->\n```sh\nls\n```\n\n<!-- test: cli -->\n\n```python\nx = 1\n```\n"
    (tmp_path / "R.md").write_text(text)
    skipped, unmarked = readme.blocks(tmp_path / "R.md")
    assert (skipped.kind, skipped.reason, skipped.text, skipped.line) == ("skip", "why", "ls\n", 2)
    assert unmarked.kind is None and unmarked.language == "python"  # a blank line parts a marker from it


def test_grpcurl_inference_examples(
    server: ServerProcess, shell_path: dict[str, str], tmp_path: Path
) -> None:
    need_grpcurl()
    blocks = [b for b in readme.examples("grpcurl") if "TrainingService/Train" not in b.text]
    assert blocks
    for block in blocks:
        for command in readme.commands(readme.substitute(block.text, server.target)):
            answers = readme.json_objects(run_shell(command, shell_path, tmp_path))
            assert answers, command
            if "/Classify" in command:
                assert answers[0]["results"][0]["labels"][0]["label"] in {"positive", "negative"}
            if "/ListModels" in command:
                assert {"tiny-sentiment", "tiny-ner"} <= {m["name"] for m in answers[0]["models"]}


def test_curl_examples(server: ServerProcess, shell_path: dict[str, str], tmp_path: Path) -> None:
    """The Open Inference Protocol over HTTP, as the README shows it with curl."""
    if shutil.which("curl") is None:
        pytest.skip("curl is absent")
    blocks = readme.examples("curl")
    assert blocks
    target = f"127.0.0.1:{server.http_port}"
    for block in blocks:
        for command in readme.commands(readme.substitute_http(block.text, target)):
            answers = readme.json_objects(run_shell(command, shell_path, tmp_path))
            assert answers and "error" not in answers[0], (command, answers)
            if command.rstrip().endswith("/ready"):
                assert answers == [{"ready": True}]
            if "/infer" in command:
                outputs = {o["name"]: o for o in answers[0]["outputs"]}
                assert answers[0]["model_name"] in {"tiny-sentiment", "tiny-ner"}
                assert set(outputs) in ({"label", "score", "scores"}, {"entities"})
                if "entities" in outputs:
                    assert all(isinstance(json.loads(e), list) for e in outputs["entities"]["data"])


@pytest.fixture()
def training_server(tmp_path: Path, tiny_base: Path) -> Iterator[ServerProcess]:
    """A server with training on and an empty store, whose default base is the tiny BERT (fast to train)."""
    root = tmp_path / "models"
    root.mkdir()
    proc = ServerProcess(
        root, "--intra-op-threads", "1", env={"TUNESERVE_TRAINING__DEFAULT_BASE": str(tiny_base)}
    )
    yield proc
    proc.stop()


def test_grpcurl_train_example(
    training_server: ServerProcess, shell_path: dict[str, str], tmp_path: Path
) -> None:
    """Train, watch to the end, promote: `<id>` is the job id that Train answered."""
    need_grpcurl()
    blocks = [b for b in readme.examples("grpcurl") if "TrainingService/Train" in b.text]
    assert blocks
    for block in blocks:
        job = ""
        for command in readme.commands(readme.substitute(block.text, training_server.target)):
            out = run_shell(command.replace("<id>", job), shell_path, tmp_path)
            if re.search(r"TrainingService/Train\s", command):
                job = readme.json_objects(out)[0]["job"]["id"]
            if "/WatchTrainingJob" in command:
                assert readme.json_objects(out)[-1]["event"]["state"] == "JOB_STATE_SUCCEEDED", out[-2000:]
    listed = training_server.models.ListModels(model_pb2.ListModelsRequest(), timeout=10).models
    assert {m.name: m.serving_version for m in listed}["reviews"] == 1


def test_cli_examples(server: ServerProcess, shell_path: dict[str, str], tmp_path: Path) -> None:
    """`tuneserve predict` and `tuneserve models get` find the server through TUNESERVE_SERVER (what
    `--server` defaults to)."""
    env = {**shell_path, "TUNESERVE_SERVER": server.target}
    shutil.copy(FIXTURES / "sentiment_validation.tsv", tmp_path / "reviews.tsv")
    for block in readme.examples("cli"):
        shown = re.findall(r"^# (\{.*\})$", block.text, re.MULTILINE)
        for command in readme.commands(readme.substitute(block.text, server.target)):
            out = run_shell(command, env, tmp_path)
            if "--output text" in command:  # `tuneserve models get NAME --output text`: the lineage, readable
                assert out.startswith("model tiny-sentiment (classification)") and "\n  lineage\n" in out
                assert "    run        seed 42, device cpu, world size 1" in out
                continue
            for answer in map(json.loads, out.splitlines()):
                assert answer["model"] in {"tiny-sentiment", "tiny-ner"}
                keys = set(answer) | {k for label in answer.get("labels", []) for k in label}
                for example in shown if "labels" in answer else []:
                    assert set(re.findall(r'"(\w+)":', example)) <= keys, (example, answer)
    answers = (tmp_path / "answers.jsonl").read_text().splitlines()
    texts = [line.split("\t")[0] for line in (tmp_path / "reviews.tsv").read_text().splitlines()]
    assert len(answers) == len([t for t in texts if t.strip()])


def test_python_examples(server: ServerProcess, tmp_path: Path) -> None:
    blocks = readme.examples("python")
    assert blocks
    for block in blocks:
        code = readme.substitute(block.text, server.target)
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT
        )
        assert result.returncode == 0, f"README.md:{block.line}:\n{result.stderr[-3000:]}"
        assert "tiny-sentiment" in result.stdout


GO_MAIN = """package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/tuneserve/tuneserve/clients/go/tuneserve"
)

func main() {
	ctx := context.Background()
	text := "Angela Merkel met Emmanuel Macron in Paris."
%s}
"""


@pytest.fixture()
def tls_server(model_store: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """The tiny models behind TLS, inference needing a token (TUNESERVE_TOKEN); and the CA file."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pki = tmp_path / "pki"
    pki.mkdir()
    ca.cert_pem.write_to_path(pki / "ca.pem")
    cert.private_key_pem.write_to_path(pki / "server.key")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(pki / "server.pem", append=True)
    proc = ServerProcess(
        model_store,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        "--auth-inference",
        "--intra-op-threads",
        "1",
        env={"TUNESERVE_AUTH__READ_TOKENS": "readme-token"},
        credentials=grpc.ssl_channel_credentials(ca.cert_pem.bytes()),
    )
    yield proc, pki / "ca.pem"
    proc.stop()


def test_go_example(tls_server: tuple[ServerProcess, Path], tmp_path: Path) -> None:
    """The Go example in a main package (its `ctx` and `text` given), the README's `replace` set-up with
    this repository as the clone, then `go run` over TLS with a token."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed")
    server, ca_file = tls_server
    setup, example = readme.examples("go", "sh"), readme.examples("go", "go")
    assert len(setup) == 1 and len(example) == 1
    module = tmp_path / "example"
    module.mkdir()
    shutil.copy(ca_file, module / "ca.pem")
    env = {**os.environ, "TUNESERVE_TOKEN": "readme-token"}
    body = readme.substitute(example[0].text, server.target)
    (module / "main.go").write_text(GO_MAIN % "".join("\t" + line + "\n" for line in body.splitlines()))
    run_shell("go mod init example.com/readme", env, module)
    for command in readme.commands(setup[0].text.replace("/path/to/tuneserve", str(REPO))):
        run_shell(command, env, module)
    out = run_shell("go run .", env, module)
    assert all(line.split(" ", 1)[0] in {"PER", "ORG", "LOC", "MISC"} for line in out.splitlines()), out


def test_java_example_is_the_compiled_one() -> None:
    """The Java block is skipped here because `make test-java` compiles it: it must be that file's."""
    (block,) = [b for b in readme.blocks() if b.language == "java"]
    assert block.kind == "skip" and "ReadmeExampleTest.java" in (block.reason or "")
    source = [line.strip() for line in JAVA_EXAMPLE.read_text(encoding="utf-8").splitlines()]
    wanted = [line.strip() for line in block.text.splitlines() if line.strip()]
    starts = [i for i in range(len(source)) if source[i : i + len(wanted)] == wanted]
    assert starts, f"README.md:{block.line}: the Java example differs from {JAVA_EXAMPLE.name}'s"
