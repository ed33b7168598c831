"""Export a trained DepthNet for deployment: an ONNX model that carries its :class:`ModelInfo`, and a TensorRT
engine built from that ONNX.

The ONNX model: input ``image`` (B,3,H,W) float32 RGB in [0, 1] (the ImageNet normalisation is inside the
graph), output ``depth`` (B,1,H,W) float32 metres; H and W are fixed at export time, the batch axis is dynamic
by default; ModelInfo.to_metadata() is stored in ``metadata_props`` (deploy/onnx_io.py), so the .onnx file
alone runs the node.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript). The legacy TorchScript exporter
is deprecated in torch >= 2.9 and, with a dynamic batch, writes a wrong output shape for this network
((batch, 1, batch, ?) instead of (batch, 1, H, W)); the dynamo exporter gives exact static H, W and a
symbolic batch. It implements opset 18 and newer; its down-conversion to opset 17 fails on this network
(no Pad adapter), hence :data:`MIN_OPSET` = 18.

Export size and scale (docs/METHOD.md, "Scale"). The network is fully convolutional, so it can be exported at
another size than it was trained at (H and W multiples of 32, at least 64). Deployment resizes every image to
the export size, which keeps the image's field of view: the export-size network sees the training camera as an
image W_export pixels wide, whose focal length there is f_export = train_focal * W_export / W_train. That
value is what the model's ModelInfo stores as train_focal (with width/height = the export size), so the
runtime's D' = D * f' / train_focal, with f' the camera's focal at the export size, reduces to (f_cam / W_cam)
/ (train_focal / W_train) whatever the export size: the scale follows the camera's field of view, as it does
at the training size. The width sets the focal ratio (train_focal is a horizontal focal length); at an export
aspect ratio other than the training one the runtime takes the training camera's vertical focal length as
scaled by the height (deploy/fit.py, training_focals, from data.width/height in the stored configuration).
How well a network does at a size it was not trained at is an accuracy question the export cannot answer:
evaluate it.

Precision: the ONNX model is float32, or with ``quantize="int8"`` statically quantised for CPUs
(deploy/quantize.py: int8 weights, uint8 activations, calibrated on frames of the training data or of a
given source, deploy/calibration.py); its metadata then says ``quantization: int8``. Half precision is a
runtime choice of the engine builder (``export_engine(..., precision="fp16")``, see deploy/tensorrt_build.py)
or of ONNX Runtime's TensorRT execution provider; ONNX Runtime's CPU provider has few fp16 kernels, so an
fp16 .onnx would run slower there.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Union

from fg_depth_core.atomic_io import atomic_write_bytes
from fg_depth_core.config import INPUT_MULTIPLE, MIN_INPUT_SIZE, PRECISIONS, InferenceConfig
from fg_depth_core.deploy import tensorrt_build
from fg_depth_core.deploy.calibration import DEFAULT_CALIBRATION_FRAMES
from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, QUANTIZATIONS, ModelInfo
from fg_depth_core.deploy.onnx_io import set_onnx_info
from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

PathLike = Union[str, "os.PathLike[str]"]

#: ONNX opsets this exporter writes (see the module docstring for the lower bound).
MIN_OPSET = 18
DEFAULT_OPSET = 18
#: Batch size of the example input when the batch axis is dynamic: torch.export specialises sizes 0 and 1.
_EXAMPLE_BATCH = 2


class ExportError(FgDepthError):
    """An export could not be done: bad size or opset, an exporter failure, an unwritable output."""


# ------------------------------------------------------------------------------------------ pure functions


def check_export_size(height: int, width: int) -> None:
    """Raise ExportError unless ``height`` and ``width`` (pixels) are multiples of 32 and at least 64."""

    def fit(side: int) -> int:
        return max(MIN_INPUT_SIZE, round(side / INPUT_MULTIPLE) * INPUT_MULTIPLE)

    bad = [
        (name, value)
        for name, value in (("height", height), ("width", width))
        if not isinstance(value, int) or value % INPUT_MULTIPLE or value < MIN_INPUT_SIZE
    ]
    if bad:
        got = ", ".join(f"{name} {value}" for name, value in bad)
        raise ExportError(
            f"export size: height and width must be multiples of {INPUT_MULTIPLE} and at least "
            f"{MIN_INPUT_SIZE} pixels (the encoder downsamples 32x), got {got}; e.g. "
            + ", ".join(f"{name} {fit(int(value))}" for name, value in bad)
        )


def check_opset(opset: int) -> None:
    """Raise ExportError unless the exporter can write ``opset`` and the installed onnx knows it."""
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError(
            f"opset: expected {MIN_OPSET}..{newest}, got {opset} (the torch.export-based ONNX exporter "
            f"writes opset >= {MIN_OPSET}; onnx {onnx.__version__} knows up to {newest})"
        )


def export_info(state: Mapping[str, Any], height: int, width: int) -> ModelInfo:
    """The ModelInfo of a checkpoint's network exported at ``width`` x ``height``: that size, and the
    training focal length converted to it, f_export = train_focal * width / W_train (module docstring)."""
    info = ModelInfo.from_checkpoint(state)
    return dataclasses.replace(
        info, width=int(width), height=int(height), train_focal=info.train_focal * width / info.width
    )


# ------------------------------------------------------------------------------------------------ ONNX


def export_onnx(
    checkpoint_path: PathLike,
    out_path: PathLike,
    height: Optional[int] = None,
    width: Optional[int] = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    quantize: str = "none",
    calibration: Optional[PathLike] = None,
    calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
    log: Optional[Callable[[str], None]] = None,
) -> ModelInfo:
    """Export a checkpoint's DepthNet to ONNX at ``width`` x ``height`` (default: its training size).

    Writes ``out_path`` atomically (a failed export leaves no file and keeps an existing one) and returns
    the ModelInfo stored in it (train_focal at the export size). The batch axis is symbolic ("batch") when
    ``dynamic_batch``, else fixed at 1. ``quantize="int8"`` quantises it statically (module docstring),
    calibrated on ``calibration_frames`` frames of ``calibration`` (a bag, stereo folder, synth folder or
    KITTI raw tree) or, when None, of the checkpoint's training data; ``log`` receives a line saying which.
    """
    from fg_depth_core.deploy.calibration import calibration_frames as open_frames
    from fg_depth_core.model.checkpoint import load_model

    out_path = Path(out_path)
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize: expected one of {list(QUANTIZATIONS)}, got {quantize!r}")
    if calibration is not None and quantize == "none":
        raise ExportError("a calibration source applies to a quantised export only (quantize='int8')")
    if height is not None and width is not None:
        check_export_size(height, width)
    check_opset(opset)
    _check_output_path(out_path, checkpoint_path)
    net, _, state = load_model(checkpoint_path, "cpu")
    train_w, train_h = (int(v) for v in state["input_size"])
    height = train_h if height is None else height
    width = train_w if width is None else width
    check_export_size(height, width)
    info = export_info(state, height, width)
    if quantize == "none":
        write_onnx(onnx_model(net, height, width, opset, dynamic_batch), info, out_path)
        return info

    # The calibration source is opened first: a missing or unreadable one fails before the slow export.
    with open_frames(checkpoint_path, state["config"], calibration_frames, calibration, log) as frames:
        model = onnx_model(net, height, width, opset, dynamic_batch)
        del net
        if log is not None:
            log(f"calibrating int8 quantisation on {frames.description}")
        return write_int8_onnx(model, frames.images(), info, _runtime_fit(state["config"]), out_path)


def write_int8_onnx(
    model: Any,
    images: Iterable[Any],
    info: ModelInfo,
    fit: str,
    out_path: Union[str, Path],
    activations: str = "uint8",
) -> ModelInfo:
    """Quantise a float32 fg-depth ONNX ``model`` to int8, calibrated on ``images`` ((H,W,3) uint8, fitted to
    the network input by ``fit``), and write it to ``out_path`` marked int8; its metadata is returned."""
    from fg_depth_core.deploy.quantize import quantize_int8

    model = quantize_int8(model, calibration_batches(images, info, fit), info, activations)
    info = dataclasses.replace(info, quantization="int8")
    write_onnx(model, info, out_path)
    return info


def _runtime_fit(config: Mapping[str, Any]) -> str:
    """The input fit the runtime applies by default for a checkpoint's configuration."""
    section = config.get("inference") if isinstance(config, Mapping) else None
    fit = section.get("input_fit") if isinstance(section, Mapping) else None
    return fit if isinstance(fit, str) else InferenceConfig().input_fit


def calibration_batches(
    images: Iterable["np.ndarray"], info: ModelInfo, input_fit: str
) -> Iterator["np.ndarray"]:
    """Camera images (H,W,3) uint8 RGB -> network inputs (1,3,H,W) float32 in [0, 1] at the export size,
    fitted by ``input_fit`` as DepthEstimator.predict fits them."""
    from fg_depth_core.deploy.estimator import preprocess
    from fg_depth_core.deploy.fit import plan_fit

    for rgb in images:
        fit = plan_fit(input_fit, rgb.shape[1], rgb.shape[0], info.width, info.height)
        yield preprocess(rgb, info.width, info.height, fit)


def onnx_model(
    net: "torch.nn.Module", height: int, width: int, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True
) -> "onnx.ModelProto":
    """The ONNX graph of ``net`` (a DepthNet, on CPU) for (B,3,height,width) inputs, without metadata."""
    import torch

    from fg_depth_core.model import DepthNetExport

    check_export_size(height, width)
    check_opset(opset)
    wrapper = DepthNetExport(net.eval())
    # The values do not shape the graph; a private generator leaves the caller's random stream alone.
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(_EXAMPLE_BATCH if dynamic_batch else 1, 3, height, width, generator=generator)
    dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    try:
        program = torch.onnx.export(
            wrapper,
            (example,),
            None,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
        model = program.model_proto
    except Exception as exc:  # the exporter raises many types; the user needs the first lines of it
        text = str(exc).strip().splitlines()
        raise ExportError(
            f"ONNX export at {width}x{height} (opset {opset}) failed: {type(exc).__name__}: "
            + " / ".join(text[:3])
        ) from exc
    return model


def write_onnx(model: "onnx.ModelProto", info: ModelInfo, out_path: PathLike) -> Path:
    """Store ``info`` in ``model.metadata_props`` (:func:`set_onnx_info`), check the model with onnx.checker
    and write it to ``out_path`` atomically (temporary file in the same folder, fsync, rename): on any
    failure no new file appears and an existing one is kept."""
    import onnx

    out_path = Path(out_path)
    set_onnx_info(model, info)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, shape inference errors
        raise ExportError(f"{out_path}: the exported model fails onnx.checker: {exc}") from None
    data = model.SerializeToString()
    try:
        atomic_write_bytes(out_path, data)
    except OSError as exc:
        raise ExportError(f"{out_path}: cannot write the model ({exc})") from None
    return out_path


# ----------------------------------------------------------------------------------------------- TensorRT


def export_engine(
    checkpoint_path: PathLike,
    engine_path: PathLike,
    height: Optional[int] = None,
    width: Optional[int] = None,
    precision: str = "fp32",
    workspace_bytes: Optional[int] = None,
    timing_cache: Optional[PathLike] = None,
    onnx_path: Optional[PathLike] = None,
    opset: int = DEFAULT_OPSET,
    max_batch: Optional[int] = None,
) -> ModelInfo:
    """Export to ONNX (``onnx_path``, default: the engine's path with suffix .onnx, kept as the portable
    model; dynamic batch) and build a TensorRT engine from it with deploy/tensorrt_build.py, which writes
    the ModelInfo beside the engine (``<engine>.json``). ``workspace_bytes``, ``max_batch`` (the largest
    batch of the engine's optimisation profile): None = that module's defaults. When TensorRT is missing,
    that module's error (naming what to install) is raised before the (slow) ONNX export."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if workspace_bytes is not None and workspace_bytes <= 0:
        raise ExportError(f"workspace: expected a positive number of bytes, got {workspace_bytes}")
    if max_batch is not None and max_batch < 1:
        raise ExportError(f"max_batch: expected >= 1, got {max_batch}")
    engine_path = Path(engine_path)
    onnx_path = engine_path.with_suffix(".onnx") if onnx_path is None else Path(onnx_path)
    if onnx_path.resolve() == engine_path.resolve():
        raise ExportError(f"{engine_path}: the engine and its ONNX model need different paths")
    if height is not None and width is not None:
        check_export_size(height, width)
    check_opset(opset)
    _check_output_path(engine_path, checkpoint_path)
    tensorrt_build.import_tensorrt()
    info = export_onnx(checkpoint_path, onnx_path, height, width, opset=opset, dynamic_batch=True)
    extra = {} if max_batch is None else {"max_batch": int(max_batch)}
    tensorrt_build.build_engine(onnx_path, engine_path, precision, workspace_bytes, timing_cache, **extra)
    return info


# ---------------------------------------------------------------------------------------------- files


def _check_output_path(out_path: Path, checkpoint_path: PathLike) -> None:
    if out_path.is_dir():
        raise ExportError(f"{out_path}: is a directory; give the output file's path")
    if out_path.resolve() == Path(checkpoint_path).resolve():
        raise ExportError(f"{out_path}: would overwrite the checkpoint; choose another output path")
