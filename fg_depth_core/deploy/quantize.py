"""Static int8 quantisation of an exported DepthNet with ONNX Runtime's quantisation tools, for CPUs.

The float32 .onnx is prepared (``quant_pre_process``: shape inference and graph clean-up), then
``quantize_static`` writes QuantizeLinear/DequantizeLinear pairs around its operators (QDQ format): int8
weights with one scale per output channel, uint8 activations with a scale and zero point per tensor, their
ranges the minimum and maximum seen on the calibration images (MinMax). ONNX Runtime's CPU provider fuses
each DequantizeLinear -> Conv -> QuantizeLinear into an integer convolution (VNNI / AVX2 kernels where the
CPU has them); ELU has no integer kernel and runs in float between a dequantisation and a quantisation.
uint8 activations with int8 weights (U8S8) is the combination x86 kernels are built for; int8 activations
(S8S8, ``activations="int8"``) are kept for comparison (bench/runtimes.py measures both).

The output head stays float32: the last convolution and what follows it (sigmoid, the scaling to the
disparity range, the reciprocal to depth, :func:`float_head`). Its logits and the disparity span
1/max_depth..1/min_depth, three orders of magnitude; 256 levels over that span would make every depth
beyond about 25 m one value. It is one small convolution (16 -> 1 channels), so keeping it float costs
little time.

The result is an ordinary fg-depth .onnx (same tensor names, shapes and dynamic batch) whose ModelInfo says
``quantization: int8``; every backend that runs a .onnx on the CPU runs it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, List, Optional, Union

import numpy as np

from fg_depth_core.deploy.model_info import INPUT_NAME, ModelInfo
from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    import onnx

PathLike = Union[str, "os.PathLike[str]"]

#: Activation types (ours -> ONNX Runtime's QuantType member); weights are always int8 ("QInt8").
ACTIVATION_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}
DEFAULT_ACTIVATIONS = "uint8"
WEIGHT_TYPE = "QInt8"


class QuantizationError(FgDepthError):
    """Quantisation failed: no calibration images, ONNX Runtime's tools missing or failing."""


def float_head(model: "onnx.ModelProto") -> List[str]:
    """Names of the nodes from the graph's output back to, and including, the last convolution: the head
    that stays float32 (module docstring). A graph without a convolution on that path gives every node on
    it, which is then not quantised at all."""
    producer = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name for t in model.graph.initializer}
    head: List[str] = []
    pending = [out.name for out in model.graph.output]
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in head:
            continue
        head.append(node.name)
        if node.op_type != "Conv":
            pending.extend(name for name in node.input if name and name not in constants)
    return head


def _name_nodes(model: "onnx.ModelProto") -> None:
    """Give every unnamed node a unique name: exclusion lists refer to nodes by name."""
    taken = {node.name for node in model.graph.node if node.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type.lower()}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


class _Reader:
    """ONNX Runtime's CalibrationDataReader over (1,3,H,W) float32 batches."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)
        self.count = 0

    def get_next(self) -> Optional[dict]:
        batch = next(self._batches, None)
        if batch is None:
            return None
        self.count += 1
        return {INPUT_NAME: batch}

    def rewind(self) -> None:  # part of the interface; calibration reads the images once
        pass

    def set_range(self, start_index: int, end_index: int) -> None:  # likewise, for batched calibration
        pass


def quantize_int8(
    float_model: "onnx.ModelProto",
    batches: Iterable[np.ndarray],
    info: ModelInfo,
    activations: str = DEFAULT_ACTIVATIONS,
) -> "onnx.ModelProto":
    """The int8 QDQ model of an fg-depth ``float_model`` (module docstring), calibrated on ``batches``:
    (1,3,H,W) float32 RGB in [0, 1] at the network input size, as the runtime's pre-processing makes them
    (deploy/estimator.py, preprocess). ``activations``: "uint8" or "int8". Returns the model without
    fg-depth metadata; ``info`` gives the size the batches must have."""
    import itertools

    import onnx

    if activations not in ACTIVATION_TYPES:
        raise QuantizationError(
            f"activations: expected one of {list(ACTIVATION_TYPES)}, got {activations!r}"
        )
    try:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise QuantizationError(
            f"int8 quantisation needs ONNX Runtime's quantisation tools (pip install onnxruntime): {exc}"
        ) from None

    expected = (1, 3, info.height, info.width)

    def checked(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in source:
            if batch.shape != expected or batch.dtype != np.float32:
                raise QuantizationError(
                    f"calibration image: expected float32 {expected}, got {batch.dtype} {batch.shape}"
                )
            yield batch

    source = checked(batches)
    first = next(source, None)
    if first is None:
        raise QuantizationError("calibration: no images were given")
    reader = _Reader(itertools.chain([first], source))
    with tempfile.TemporaryDirectory(prefix="fg-depth-quantize-") as tmp:
        raw, prepared, quantized = (Path(tmp) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(float_model, str(raw))
        try:
            # Symbolic shape inference cannot follow the dynamic batch axis through this graph; ONNX's own
            # shape inference (which it still runs) is all the quantiser needs.
            quant_pre_process(str(raw), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
            _name_nodes(model)
            onnx.save(model, str(prepared))
            quantize_static(
                str(prepared),
                str(quantized),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=getattr(QuantType, ACTIVATION_TYPES[activations]),
                weight_type=getattr(QuantType, WEIGHT_TYPE),
                calibrate_method=CalibrationMethod.MinMax,
                # MinMax calibration keeps only each tensor's minimum and maximum per image (its augmented
                # model reduces them), so any number of images fits in memory.
                nodes_to_exclude=float_head(model),
            )
        except QuantizationError:
            raise
        except Exception as exc:  # ONNX Runtime raises many types from deep inside its tools
            lines = str(exc).strip().splitlines()
            raise QuantizationError(
                f"ONNX Runtime's static quantisation failed: {type(exc).__name__}: {' / '.join(lines[:3])}"
            ) from exc
        return onnx.load(str(quantized))
