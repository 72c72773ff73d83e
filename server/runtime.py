"""``OrtRuntime``: one verified model version in ONNX Runtime, its tokenizer, warmup and ``run(rows)``.

Which file and execution provider serve a version is decided here, from the manifest and what this
ONNX Runtime build offers:

- CUDA (onnxruntime-gpu and a visible GPU, device ``auto`` or ``cuda``): the fp16 export when the folder has
  one, else the served file unless it is int8 (int8 kernels are CPU kernels; the fp32 export runs instead).
- CPU otherwise: the manifest's served file; an fp16 file falls back to the fp32 export when present.

An int8 file made for instructions this CPU lacks (the manifest's ``quantization.target``, see
``tuneserve.cpu``) still loads, with a warning: it can be slower, or (an avx512-vnni or arm64 file on an
x86 CPU without VNNI) lose accuracy to saturation.

No torch, no transformers: only onnxruntime, numpy and the Rust tokenizers library.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnxruntime as ort
import structlog
from tokenizers import Tokenizer

from tuneserve.cpu import missing_for
from tuneserve.encoding import Row, encode_texts
from tuneserve.inference import OnnxModel
from tuneserve.repository import ModelVersion

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
FP32_FILE = "model.onnx"
FP16_FILE = "model_fp16.onnx"
Device = Literal["auto", "cpu", "cuda"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Placement:
    """The ONNX file served and where it runs."""

    onnx_file: str
    providers: tuple[str, ...]
    quantization: str  # as in the manifest: "int8-dynamic", "int8-static", "fp16", "none"


def choose_placement(
    version: ModelVersion, device: Device = "auto", available: Sequence[str] | None = None
) -> Placement:
    """Pick the file and providers for ``version`` (see the module docstring)."""
    m = version.manifest
    have = set(ort.get_available_providers() if available is None else available)
    files = set(m.files)
    served_q = m.quantization.served
    if device != "cpu" and CUDA in have:
        if FP16_FILE in files:
            return Placement(FP16_FILE, (CUDA, CPU), "fp16")
        if not served_q.startswith("int8"):
            return Placement(m.onnx_file, (CUDA, CPU), served_q)
        if FP32_FILE in files:
            return Placement(FP32_FILE, (CUDA, CPU), "none")
    if served_q == "fp16" and FP32_FILE in files:
        return Placement(FP32_FILE, (CPU,), "none")
    return Placement(m.onnx_file, (CPU,), served_q)


def int8_target_mismatch(version: ModelVersion, placement: Placement) -> str | None:
    """What this CPU lacks of the instructions the served int8 file was made for, or None."""
    target = version.manifest.quantization.target
    if target is None or not placement.quantization.startswith("int8"):
        return None
    return missing_for(target)


class OrtRuntime:
    """A loaded model version: tokenizer plus ORT session. ``run`` is thread-safe (ORT sessions are)."""

    def __init__(
        self,
        version: ModelVersion,
        *,
        device: Device = "auto",
        intra_op_threads: int = 0,
        idle_session: bool = False,
    ) -> None:
        self.version = version
        self.manifest = version.manifest
        self.placement = choose_placement(version, device)
        self.cpu_mismatch = int8_target_mismatch(version, self.placement)
        if self.cpu_mismatch:
            log.warning(
                "int8 model made for other CPUs",
                model=self.manifest.name,
                version=self.manifest.version,
                target=self.manifest.quantization.target,
                missing=self.cpu_mismatch,
                hint="export with --int8-target avx2 (portable) or the serving CPUs' target",
            )
        self._model = OnnxModel(
            version.path,
            self.placement.onnx_file,
            self.manifest.max_length,
            providers=list(self.placement.providers),
            intra_op_threads=intra_op_threads,
        )
        if device == "cuda" and self._model.provider != CUDA:
            raise RuntimeError(
                f"device 'cuda' was asked for, but ONNX Runtime placed the model on {self._model.provider}"
            )
        # A second session whose intra-op threads spin between operators: a lone request on an idle
        # model runs faster on it; batches under load run on the main one, whose threads sleep when idle.
        self._idle: OnnxModel | None = None
        if idle_session and self._model.provider == CPU and intra_op_threads != 1:
            self._idle = OnnxModel(
                version.path,
                self.placement.onnx_file,
                self.manifest.max_length,
                providers=[CPU],
                intra_op_threads=intra_op_threads,
                spinning=True,
            )
        self.warmup_seconds = 0.0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._model.tokenizer

    @property
    def max_length(self) -> int:
        return self.manifest.max_length

    @property
    def provider(self) -> str:
        return self._model.provider

    @property
    def pad_id(self) -> int:
        return self._model.pad_id

    def run(self, rows: Sequence[Row]) -> np.ndarray:
        """Logits ``[batch, labels]`` or ``[batch, tokens, labels]`` for rows padded to the longest."""
        return self._model.logits(rows)

    def run_idle(self, rows: Sequence[Row]) -> np.ndarray:
        """``run`` for rows reaching an idle model: on the spinning session when there is one."""
        return (self._idle or self._model).logits(rows)

    def warmup(self, batch_size: int = 8) -> float:
        """Run a short single row and a full-length batch once, so the first request pays no set-up cost."""
        start = time.perf_counter()
        (short,) = encode_texts(self.tokenizer, ["warm up"])
        long = Row(
            ids=[self.pad_id + 1] * self.max_length,
            type_ids=[0] * self.max_length,
            word_ids=[None] * self.max_length,
        )
        self._model.logits([short])
        self._model.logits([long] * max(1, min(batch_size, 8)))
        if self._idle is not None:  # mostly lone rows: a short one (a long batch would only grow its arena)
            self._idle.logits([short])
        self.warmup_seconds = time.perf_counter() - start
        return self.warmup_seconds
