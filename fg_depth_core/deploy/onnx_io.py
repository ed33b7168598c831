"""The ModelInfo inside an fg-depth .onnx file: stored as ``metadata_props`` (keys ``fg_depth.*``) and read
back with the tensor names and sizes checked against it.

Shared by the exporter (deploy/export.py writes it), the ONNX Runtime backend and the TensorRT engine builder
(both read it). ``onnx`` is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, ModelInfo, ModelInfoError

if TYPE_CHECKING:
    import onnx

PathLike = Union[str, "os.PathLike[str]"]


def set_onnx_info(model: "onnx.ModelProto", info: ModelInfo) -> None:
    """Store ``info`` in ``model.metadata_props`` (replacing earlier fg-depth keys, keeping other keys) and
    describe the model's input and output in its doc_string."""
    metadata = info.to_metadata()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    for key, value in kept + list(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    model.doc_string = (
        f"fg-depth DepthNet: {INPUT_NAME} (B,3,{info.height},{info.width}) float32 RGB in [0,1] -> "
        f"{OUTPUT_NAME} (B,1,{info.height},{info.width}) float32 metres; metadata keys fg_depth.*"
    )


def onnx_info(model: "onnx.ModelProto", source: str = "model") -> ModelInfo:
    """The ModelInfo stored in a loaded ONNX model, checked against its tensors; ModelInfoError naming
    ``source`` for a foreign model (no fg-depth metadata, other tensor names or sizes)."""
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props}, source=source)
    check_onnx_io(model, info, source)
    return info


def read_onnx_info(path: PathLike) -> ModelInfo:
    """The ModelInfo stored in an fg-depth .onnx file; ModelInfoError naming the file for a missing,
    unreadable or foreign model (no fg-depth metadata, other tensor names or sizes)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelInfoError(f"{path}: ONNX model not found")
    try:
        # Weights stored outside the file are not needed for the metadata.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, onnx's errors, OSError
        raise ModelInfoError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    return onnx_info(model, str(path))


def check_onnx_io(model: "onnx.ModelProto", info: ModelInfo, source: str = "model") -> None:
    """Tensor names and static sizes must be what the metadata says: (B,3,H,W) in, (B,1,H,W) out."""
    expected = {INPUT_NAME: (3, info.height, info.width), OUTPUT_NAME: (1, info.height, info.width)}
    initializers = {t.name for t in model.graph.initializer}
    found = {v.name: v for v in model.graph.input if v.name not in initializers}
    found.update({v.name: v for v in model.graph.output})
    for name, (channels, height, width) in expected.items():
        if name not in found:
            raise ModelInfoError(
                f"{source}: expected tensors {INPUT_NAME!r} and {OUTPUT_NAME!r}, found {sorted(found)}"
            )
        dims = found[name].type.tensor_type.shape.dim
        sizes = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        if len(sizes) != 4 or any(
            s is not None and s != e for s, e in zip(sizes[1:], (channels, height, width))
        ):
            shown = tuple(s if s is not None else "?" for s in sizes)
            raise ModelInfoError(
                f"{source}: tensor {name!r} has shape {shown}, but the metadata says "
                f"(B,{channels},{height},{width})"
            )
