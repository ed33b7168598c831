"""TensorRT engines from fg-depth ONNX models (TensorRT >= 10 Python API): the build, and the metadata file
beside each engine. Used by ``fg-depth export --format tensorrt`` (deploy/export.py) and by the TensorRT
backend (deploy/backends/tensorrt.py), which builds an engine from an .onnx on first use; this module
imports neither of them.

- An engine file holds no fg-depth metadata, so :func:`build_engine` writes ``<engine>.json`` beside it
  (ModelInfo, precision, TensorRT version, ONNX hash) and the backend reads it (:func:`read_engine_info`).
- Precision (:func:`precision_plan`): below TensorRT 10.12 the network is weakly typed and fp16 is the builder
  flag FP16. From 10.12 on weak typing is deprecated (and removed in 11), so the network is strongly typed:
  its tensors keep the ONNX types, and fp16 means building from an fp16 copy of the ONNX
  (:func:`onnx_to_fp16`, float32 input/output kept).
- A timing cache (tactic timings) makes later builds on the same GPU and TensorRT version faster.

``tensorrt`` and ``onnx`` are imported lazily: the pure functions here run without them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from fg_depth_core.atomic_io import atomic_write_bytes
from fg_depth_core.config import PRECISIONS
from fg_depth_core.deploy.backends.base import INSTALL_HINTS, BackendError, BackendUnavailableError
from fg_depth_core.deploy.model_info import ModelInfo, ModelInfoError
from fg_depth_core.deploy.onnx_io import read_onnx_info

#: First TensorRT version whose weak typing (precision builder flags) is deprecated.
STRONGLY_TYPED_SINCE = (10, 12)
#: Largest batch an engine built from a dynamic-batch ONNX accepts (its optimisation profile's max).
DEFAULT_MAX_BATCH = 8
#: The builder's workspace limit when none is given (InferenceConfig.workspace_mb's default).
DEFAULT_WORKSPACE_BYTES = 1 << 30
#: Input slots that ONNX requires in float32 whatever the data type (Resize's roi and scales).
_FLOAT32_SLOTS = {"Resize": (1, 2), "Upsample": (1,)}


# ------------------------------------------------------------------------------------------ pure logic


def parse_version(version: str) -> Tuple[int, int]:
    """(major, minor) of a TensorRT version string such as "10.12.0.36"."""
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not match:
        raise BackendError(f"tensorrt: cannot read the version {version!r} (expected MAJOR.MINOR...)")
    return int(match.group(1)), int(match.group(2))


def precision_plan(trt_version: str, precision: str) -> Tuple[bool, List[str]]:
    """(strongly_typed, names of tensorrt.BuilderFlag to set) for building at ``precision``.

    TensorRT < 10.12: weakly typed network; fp16 sets BuilderFlag.FP16. TensorRT >= 10.12: strongly typed, no
    precision flags; an fp16 engine then needs an fp16 ONNX (build_engine converts it with onnx_to_fp16).
    """
    if precision not in PRECISIONS:
        raise BackendError(f"tensorrt: precision must be one of {list(PRECISIONS)}, got {precision!r}")
    version = parse_version(trt_version)
    if version < (10, 0):
        raise BackendUnavailableError(
            f"tensorrt {trt_version} is too old: fg-depth needs TensorRT 10 or newer; "
            f"{INSTALL_HINTS['tensorrt']}"
        )
    if version >= STRONGLY_TYPED_SINCE:
        return True, []
    return False, (["FP16"] if precision == "fp16" else [])


def onnx_sha256(onnx: Union[bytes, str]) -> str:
    """Hex SHA-256 of ONNX bytes; a string is taken as an existing hex digest and returned lower-cased."""
    if isinstance(onnx, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(onnx)).hexdigest()
    digest = str(onnx).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{16,128}", digest):
        raise BackendError(f"tensorrt: expected ONNX bytes or a hex digest, got {onnx!r}")
    return digest


def engine_info_path(engine_path: Union[str, Path]) -> Path:
    """``<engine>.json``: the metadata file beside an engine."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_engine_info(
    engine_path: Union[str, Path], info: ModelInfo, precision: str, trt_version: str, onnx_digest: str
) -> Path:
    """Write ``<engine>.json``: the ModelInfo (as ONNX metadata pairs) and how the engine was built."""
    path = engine_info_path(engine_path)
    data = {
        "fg_depth": info.to_metadata(),
        "precision": precision,
        "tensorrt_version": str(trt_version),
        "onnx_sha256": onnx_digest,
    }
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    return path


def read_engine_info(engine_path: Union[str, Path]) -> Tuple[ModelInfo, Dict[str, Any]]:
    """The ModelInfo and build record of an engine from its ``<engine>.json``."""
    path = engine_info_path(engine_path)
    if not path.is_file():
        raise ModelInfoError(
            f"{engine_path}: its metadata file {path.name} is missing (a TensorRT engine holds no fg-depth "
            "metadata); build the engine with fg-depth export --format tensorrt, which writes both"
        )
    try:
        data = json.loads(path.read_text())
        props = data["fg_depth"]
        precision = data["precision"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelInfoError(
            f"{path}: not an fg-depth engine metadata file ({type(exc).__name__}: {exc})"
        ) from None
    if precision not in PRECISIONS:
        raise ModelInfoError(f"{path}: precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return ModelInfo.from_metadata(props, str(path)), data


def onnx_to_fp16(model: "Any") -> "Any":
    """An fp16 copy of an onnx.ModelProto whose input and output stay float32 (Cast nodes at the edges).

    Float32 initializers and Constant values become float16, Cast-to-float becomes Cast-to-float16; Resize's
    roi/scales stay float32 as ONNX requires. The result is type-checked (strict shape inference), so a graph
    this simple conversion does not cover fails here with BackendError rather than inside TensorRT.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep = {
        node.input[i]
        for node in graph.node
        for i in _FLOAT32_SLOTS.get(node.op_type, ())
        if i < len(node.input) and node.input[i]
    }

    def half(tensor: "onnx.TensorProto") -> "onnx.TensorProto":
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)

    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            graph.initializer[i].CopyFrom(half(init))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif (
                node.op_type in ("Constant", "ConstantOfShape")
                and attr.name == "value"
                and attr.t.data_type == TensorProto.FLOAT
                and node.output[0] not in keep
            ):
                attr.t.CopyFrom(half(attr.t))
            elif node.op_type == "Constant" and attr.name in ("value_float", "value_floats"):
                raise BackendError(
                    f"onnx_to_fp16: Constant {node.name!r} uses {attr.name}, which is not handled"
                )

    initializers = {i.name for i in graph.initializer}
    rename: Dict[str, str] = {}
    head, tail = [], []
    for value in graph.input:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT and value.name not in initializers:
            rename[value.name] = value.name + "__fp16"
            head.append(helper.make_node("Cast", [value.name], [rename[value.name]], to=TensorProto.FLOAT16))
    outputs = {}
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            outputs[value.name] = value.name + "__fp16"
            tail.append(helper.make_node("Cast", [outputs[value.name]], [value.name], to=TensorProto.FLOAT))
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = outputs.get(name, rename.get(name, name))
        for i, name in enumerate(node.output):
            node.output[i] = outputs.get(name, name)
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale float32 annotations; shape inference below recomputes them
    try:
        onnx.checker.check_model(out)
        out = onnx.shape_inference.infer_shapes(out, check_type=True, strict_mode=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise BackendError(
            f"onnx_to_fp16: the fp16 graph does not type-check ({type(exc).__name__}: {exc})"
        ) from None
    return out


# ------------------------------------------------------------------------------------- with TensorRT


def import_tensorrt():
    """The tensorrt module, or BackendUnavailableError saying what to install."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend tensorrt is not installed ({exc}): {INSTALL_HINTS['tensorrt']}"
        ) from None
    return tensorrt


def trt_logger(trt):
    """A TensorRT logger that shows warnings and errors."""
    return trt.Logger(trt.Logger.WARNING)


def build_engine(
    onnx_path: Union[str, Path],
    engine_path: Union[str, Path],
    precision: str = "fp32",
    workspace_bytes: Optional[int] = None,
    timing_cache_path: Optional[Union[str, Path]] = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Path:
    """Build a TensorRT engine from an fg-depth .onnx and write it with its ``<engine>.json``.

    The timing cache (tactic timings) is read from and written back to ``timing_cache_path`` so later builds
    on the same GPU and TensorRT version are faster. A dynamic batch dimension gets an optimisation profile
    for batches 1..max_batch (optimised for 1). ``workspace_bytes`` None: :data:`DEFAULT_WORKSPACE_BYTES`.
    """
    trt = import_tensorrt()  # first: a missing TensorRT is the error to see, whatever else is wrong
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = read_onnx_info(onnx_path)
    if info.quantization != "none":
        raise BackendError(
            f"{onnx_path}: a {info.quantization} model is quantised for CPUs (uint8 activations, which "
            "TensorRT does not take); build the engine from the float32 .onnx (fg-depth export without "
            "--quantize)"
        )
    data = onnx_path.read_bytes()
    digest = onnx_sha256(data)
    strongly_typed, flags = precision_plan(trt.__version__, precision)
    if strongly_typed and precision == "fp16":
        import onnx

        data = onnx_to_fp16(onnx.load_from_string(data)).SerializeToString()

    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    creation = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(creation)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    workspace = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else int(workspace_bytes)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    timing_cache_path = Path(timing_cache_path) if timing_cache_path else None
    cached = timing_cache_path.read_bytes() if timing_cache_path and timing_cache_path.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
        # A cache from another device or version is refused: start a fresh one rather than fail the build.
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    shape = tuple(network.get_input(0).shape)
    if shape and shape[0] < 0:
        profile = builder.create_optimization_profile()
        one = (1, *shape[1:])
        profile.set_shape(network.get_input(0).name, one, one, (int(max_batch), *shape[1:]))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"{onnx_path}: TensorRT failed to build a {precision} engine (see its log above)")
    atomic_write_bytes(engine_path, bytes(serialized))
    if timing_cache_path:
        atomic_write_bytes(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    write_engine_info(engine_path, info, precision, trt.__version__, digest)
    return engine_path
