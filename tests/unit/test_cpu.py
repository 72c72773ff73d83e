"""Int8 targets against the serving CPU: what it lacks, and when the runtime warns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneserve import cpu
from tuneserve.repository import Manifest, ModelVersion, QuantizationInfo
from tuneserve.server.runtime import Placement, int8_target_mismatch

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl"}
VNNI = AVX512 | {"avx512_vnni"}


@pytest.fixture()
def x86(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")

    def with_flags(flags: frozenset[str]) -> None:
        monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)

    return with_flags


@pytest.mark.parametrize(
    ("flags", "host", "missing"),
    [
        (
            AVX2,
            "avx2",
            {"avx2": None, "avx512": "avx512bw, avx512f", "avx512-vnni": "avx512_vnni, avx512bw, avx512f"},
        ),
        (AVX512, "avx512", {"avx2": None, "avx512": None, "avx512-vnni": "avx512_vnni"}),
        (VNNI, "avx512-vnni", {"avx2": None, "avx512": None, "avx512-vnni": None}),
    ],
)
def test_x86_targets(x86, flags: frozenset[str], host: str, missing: dict[str, str | None]) -> None:
    x86(flags)
    assert cpu.host_int8_target() == host
    assert {target: cpu.missing_for(target) for target in missing} == missing
    assert "ARM64" in cpu.missing_for("arm64")


def test_arm_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.host_int8_target() == "arm64"
    assert cpu.missing_for("arm64") is None
    assert "this one is ARM64" in cpu.missing_for("avx2")


def test_this_cpu_has_its_own_target() -> None:
    assert cpu.missing_for(cpu.host_int8_target()) is None


def _version(target: str | None, served: str = "int8-dynamic") -> ModelVersion:
    q = QuantizationInfo(requested=served, served=served, target=target)
    fields = {"name": "m", "task": "classification", "labels": ["a"], "max_length": 8, "base_model": "b"}
    return ModelVersion(Path("/nowhere"), Manifest(**fields, onnx_file="x", quantization=q))


def test_the_runtime_flags_only_int8_files_made_for_instructions_this_cpu_lacks(x86) -> None:
    x86(AVX2)
    int8 = Placement("model_int8.onnx", ("CPUExecutionProvider",), "int8-dynamic")
    assert int8_target_mismatch(_version("avx512-vnni"), int8) == "avx512_vnni, avx512bw, avx512f"
    assert int8_target_mismatch(_version("avx2"), int8) is None
    assert int8_target_mismatch(_version(None), int8) is None  # exported before targets were recorded
    fp32 = Placement("model.onnx", ("CUDAExecutionProvider",), "none")  # int8 not served here
    assert int8_target_mismatch(_version("avx512-vnni"), fp32) is None
