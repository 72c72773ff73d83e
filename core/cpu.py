"""Which int8 instruction sets this CPU has: the exporter picks a target, the server checks it at load.

Int8 targets, as ``tuneserve export --int8-target`` names them, and what each needs of the CPU serving it:

- ``avx2``: uint8 weights and activations (U8U8). No saturation on any x86-64 CPU; the portable default.
- ``avx512``: int8 weights with reduced range (7 bits), as ONNX Runtime advises for U8S8 without VNNI.
- ``avx512-vnni``: int8 weights, full range (U8S8). Fastest on VNNI CPUs; on others ONNX Runtime's U8S8
  kernels (``vpmaddubsw``) can saturate, which costs accuracy.
- ``arm64``: int8 weights, full range (U8S8), for ARM's dot-product instructions.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from typing import Literal, get_args

Int8Target = Literal["avx2", "avx512", "avx512-vnni", "arm64"]
INT8_TARGETS: tuple[str, ...] = get_args(Int8Target)
DEFAULT_INT8_TARGET: Int8Target = "avx2"
# /proc/cpuinfo flags each x86 target needs
_NEEDS: dict[str, frozenset[str]] = {
    "avx2": frozenset({"avx2"}),
    "avx512": frozenset({"avx512f", "avx512bw"}),
    "avx512-vnni": frozenset({"avx512f", "avx512bw", "avx512_vnni"}),
}


def is_arm64() -> bool:
    return platform.machine().lower() in ("arm64", "aarch64")


@cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (empty when /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def host_int8_target() -> Int8Target:
    """The best int8 target for this CPU (``--int8-target auto``)."""
    if is_arm64():
        return "arm64"
    flags = cpu_flags()
    for target in ("avx512-vnni", "avx512"):
        if _NEEDS[target] <= flags:
            return target  # type: ignore[return-value]
    return "avx2"


def missing_for(target: str) -> str | None:
    """What this CPU lacks of ``target``'s instructions, in words; None when it has them all."""
    if target == "arm64":
        return None if is_arm64() else f"an ARM64 CPU (this one is {platform.machine()})"
    if is_arm64():
        return f"an x86-64 CPU with {', '.join(sorted(_NEEDS[target]))} (this one is ARM64)"
    flags = cpu_flags()
    if not flags:
        return None  # unknown: do not cry wolf
    lacking = sorted(_NEEDS[target] - flags)
    return ", ".join(lacking) if lacking else None
