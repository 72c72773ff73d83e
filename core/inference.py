"""An ONNX Runtime session over a model folder: tokenizer, session, logits. No torch.

The exporter measures quality through this class, and the server runs requests through it, so a
model's recorded ONNX metrics are measured exactly as it is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tuneserve.encoding import Row, load_tokenizer, pad


def available_providers(preferred: Sequence[str] | None = None) -> list[str]:
    """The execution providers to use: CUDA when present (and wanted), always CPU last."""
    have = set(ort.get_available_providers())
    wanted = list(preferred or ["CUDAExecutionProvider", "CPUExecutionProvider"])
    chosen = [p for p in wanted if p in have and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


class OnnxModel:
    """One ONNX file and its tokenizer, ready to compute logits for padded batches of rows."""

    def __init__(
        self,
        folder: str | Path,
        onnx_file: str,
        max_length: int,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        spinning: bool = False,
    ) -> None:
        folder = Path(folder)
        self.tokenizer = load_tokenizer(folder, max_length)
        self.max_length = max_length
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        # Spinning intra-op threads keep a core busy after every run, which a server (gRPC, asyncio, the
        # tokenizer) needs more; off by default, for the exporter's measurements and the server alike.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(folder / onnx_file), options, providers=available_providers(providers)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def logits(self, rows: Sequence[Row]) -> np.ndarray:
        """Logits for a batch: ``[batch, labels]`` or ``[batch, tokens, labels]`` (padded), as float32."""
        feeds = pad(rows, self.pad_id)
        (out,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        return np.asarray(out, dtype=np.float32)
