"""The OpenVINO backend: an exported .onnx (float32 or int8) compiled by the OpenVINO runtime for the CPU.

OpenVINO is optional (``pip install openvino``, setup.py's ``openvino`` extra) and runs only when asked for
(``backend: openvino``): on this project's x86 test CPU it ran the int8 model about 1.8x and the float32
model about 1.3x as fast as ONNX Runtime, see
docs/RESULTS.md, "Inference on CPU: OpenVINO against ONNX Runtime".

The model is read straight from the .onnx (OpenVINO's ONNX reader keeps ``metadata_props`` as the model's
"framework" runtime info, where the ModelInfo is found), reshaped to batch 1 (OpenVINO compiles static shapes
best; larger batches are split by :meth:`Backend.forward`) and compiled with the LATENCY hint. Precision fp32
asks for float32 arithmetic (``INFERENCE_PRECISION_HINT f32``): on CPUs with bf16 instructions OpenVINO would
otherwise switch float layers to bf16 by default, faster but not what fp32 promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from fg_depth_core.deploy.backends.base import (
    INSTALL_HINTS,
    Backend,
    BackendError,
    BackendUnavailableError,
    check_precision,
)
from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, ModelInfo

#: OpenVINO's name of the device this backend compiles for, and its float32 precision hint.
OV_DEVICE = "CPU"
OV_FP32 = "f32"
#: Runtime info section where OpenVINO's ONNX reader puts the file's metadata_props.
FRAMEWORK_INFO = "framework"


def import_openvino() -> Any:
    """The openvino module, or BackendUnavailableError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise BackendUnavailableError(
            f"backend openvino is not installed: {INSTALL_HINTS['openvino']}"
        ) from None
    return openvino


def metadata_props(model: Any) -> Dict[str, str]:
    """The ONNX file's metadata_props (key -> string) as OpenVINO's reader kept them."""
    info = model.get_rt_info()
    if FRAMEWORK_INFO not in info:
        return {}
    return {str(key): value.astype(str) for key, value in info[FRAMEWORK_INFO].items()}


class OpenVinoBackend(Backend):
    """An .onnx exported by ``fg-depth export`` (float32, or ``--quantize int8``) compiled by OpenVINO.

    Args:
        path: the .onnx model (its metadata gives input size, depth range and training camera).
        device: "cpu" (the only device this backend drives).
        precision: "fp32" (float layers in float32; an int8 model's convolutions stay int8).
        threads: inference threads; 0 keeps OpenVINO's default (the cores).
    """

    name = "openvino"

    def __init__(
        self, path: Union[str, Path], device: str = "cpu", precision: str = "fp32", threads: int = 0
    ) -> None:
        ov = import_openvino()
        if device != "cpu":
            raise BackendError(
                f"backend openvino runs on the CPU here, got device {device!r}; use device cpu"
            )
        check_precision(precision, device, self.name)
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError and its own types for unreadable files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BackendError(
                f"{path}: not a readable ONNX model (OpenVINO: {type(exc).__name__}: {first})"
            ) from None
        info = ModelInfo.from_metadata(metadata_props(model), source=str(path))
        super().__init__(info, device, precision)
        names = {name for port in model.inputs for name in port.get_names()}
        outputs = {name for port in model.outputs for name in port.get_names()}
        if INPUT_NAME not in names or OUTPUT_NAME not in outputs:
            raise BackendError(
                f"{path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, got inputs "
                f"{sorted(names)} and outputs {sorted(outputs)}: export the model with fg-depth export"
            )
        try:
            model.reshape({INPUT_NAME: [1, 3, info.height, info.width]})
        except Exception as exc:  # a static input of another size than the metadata's
            raise BackendError(f"{path}: cannot run at 1x3x{info.height}x{info.width}: {exc}") from None
        config: Dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OV_FP32}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, OV_DEVICE, config)
        self.request = self.compiled.create_infer_request()
        self.batch_limit = 1
        self.source = path

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({INPUT_NAME: batch})
        # The request reuses its output buffer: copy before the next call overwrites it.
        return np.array(result[self.compiled.output(OUTPUT_NAME)], dtype=np.float32, copy=True)
