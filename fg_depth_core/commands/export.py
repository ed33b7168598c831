"""``fg-depth export``: a checkpoint as an ONNX model (with its metadata) or a TensorRT engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from fg_depth_core.config import PRECISIONS, InferenceConfig
from fg_depth_core.deploy.calibration import DEFAULT_CALIBRATION_FRAMES
from fg_depth_core.deploy.model_info import QUANTIZATIONS
from fg_depth_core.deploy.tensorrt_build import DEFAULT_MAX_BATCH
from fg_depth_core.errors import FgDepthError

FORMATS = ("onnx", "tensorrt")
SUFFIXES = {"onnx": ".onnx", "tensorrt": ".engine"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (with metadata) or a TensorRT engine",
        description="Export a checkpoint's DepthNet at a fixed input size: ONNX with input 'image' "
        "(B,3,H,W) float32 RGB in [0,1] and output 'depth' (B,1,H,W) float32 metres, a dynamic batch axis, "
        "and the metadata the runtime needs (input size, normalisation, depth range, training focal length "
        "and baseline, version); or a TensorRT engine built from that ONNX (the ONNX is kept beside it, "
        "the metadata goes to a JSON file beside the engine). H and W must be multiples of 32; at another "
        "size than the training one the stored training focal length is converted to it, "
        "f = train_focal * W / W_train, so depth keeps following the camera's field of view. "
        "--quantize int8 writes an ONNX model quantised for CPUs (ONNX Runtime's static QDQ quantisation: "
        "per-channel int8 weights, uint8 activations), calibrated on frames of the checkpoint's training "
        "data or of --calibration; it runs wherever a .onnx runs on a CPU.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint written by fg-depth train")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default: onnx)")
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help="input height, pixels, a multiple of 32 (default: the training one)",
    )
    p.add_argument(
        "--width",
        type=int,
        default=None,
        help="input width, pixels, a multiple of 32 (default: the training one)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="engine precision (tensorrt only; the ONNX model is always float32, and half precision is "
        "chosen when it runs: TensorRT or ONNX Runtime's TensorRT provider) (default: fp32)",
    )
    p.add_argument(
        "--out", default=None, help="output file (default: the checkpoint's path with .onnx or .engine)"
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 18 or newer (default: 18)")
    p.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="none",
        help="int8: static int8 quantisation for CPUs (onnx only; about twice ONNX Runtime's float32 speed "
        "at a small accuracy cost, docs/RESULTS.md) (default: none)",
    )
    p.add_argument(
        "--calibration",
        default=None,
        metavar="PATH",
        help="calibration frames for --quantize int8: a rosbag2 recording, a stereo folder, a folder written "
        "by fg-depth synth or a KITTI raw tree (default: the checkpoint's training data, named by its "
        "config)",
    )
    p.add_argument(
        "--calibration-frames",
        type=int,
        default=None,
        metavar="N",
        help=f"frames to calibrate on, picked evenly over the source (default: {DEFAULT_CALIBRATION_FRAMES})",
    )
    p.add_argument(
        "--static-batch", action="store_true", help="fix the batch size to 1 (onnx only; default: dynamic)"
    )
    p.add_argument(
        "--workspace",
        type=int,
        default=None,
        metavar="MIB",
        help=f"TensorRT builder workspace limit in MiB (default: inference.workspace_mb, "
        f"{InferenceConfig().workspace_mb})",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help=f"largest batch the TensorRT engine accepts (default: {DEFAULT_MAX_BATCH})",
    )
    p.add_argument(
        "--timing-cache",
        default=None,
        metavar="PATH",
        help="TensorRT timing cache file, read and updated: speeds up later builds on this GPU",
    )
    p.set_defaults(func=run)


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    from fg_depth_core.deploy import export
    from fg_depth_core.model.checkpoint import load_checkpoint

    opset = export.DEFAULT_OPSET if args.opset is None else args.opset
    export.check_opset(opset)
    if args.format == "onnx":
        if args.precision != "fp32":
            raise FgDepthError(
                f"--precision {args.precision} applies to --format tensorrt only: the ONNX model is float32; "
                "choose half precision where it runs (a TensorRT engine, or ONNX Runtime's TensorRT provider)"
            )
        for given, name in (
            (args.workspace is not None, "--workspace"),
            (args.max_batch is not None, "--max-batch"),
            (args.timing_cache is not None, "--timing-cache"),
        ):
            if given:
                raise FgDepthError(f"{name} applies to --format tensorrt only")
    elif args.static_batch:
        raise FgDepthError("--static-batch applies to --format onnx only")
    elif args.quantize != "none":
        raise FgDepthError(
            f"--quantize {args.quantize} applies to --format onnx only: the int8 model is for CPUs (ONNX "
            "Runtime); on a GPU use a TensorRT engine, --precision fp16"
        )
    if args.quantize == "none":
        for given, name in (
            (args.calibration is not None, "--calibration"),
            (args.calibration_frames is not None, "--calibration-frames"),
        ):
            if given:
                raise FgDepthError(f"{name} applies to --quantize int8 only")
    if args.calibration_frames is not None and args.calibration_frames < 1:
        raise FgDepthError(f"--calibration-frames: expected >= 1, got {args.calibration_frames}")
    if args.workspace is not None and args.workspace <= 0:
        raise FgDepthError(f"--workspace: expected a positive number of MiB, got {args.workspace}")
    if args.max_batch is not None and args.max_batch < 1:
        raise FgDepthError(f"--max-batch: expected >= 1, got {args.max_batch}")

    checkpoint = Path(args.checkpoint)
    # Read first: a missing or foreign checkpoint fails before anything else, and the summary needs it.
    state = load_checkpoint(checkpoint)
    train_w, train_h = (int(v) for v in state["input_size"])
    train_focal = float(state["train_focal"])
    del state
    height = train_h if args.height is None else args.height
    width = train_w if args.width is None else args.width
    export.check_export_size(height, width)
    out = Path(args.out) if args.out else checkpoint.with_suffix(SUFFIXES[args.format])
    if args.format == "onnx":
        frames = DEFAULT_CALIBRATION_FRAMES if args.calibration_frames is None else args.calibration_frames
        info = export.export_onnx(
            checkpoint,
            out,
            height,
            width,
            opset=opset,
            dynamic_batch=not args.static_batch,
            quantize=args.quantize,
            calibration=args.calibration,
            calibration_frames=frames,
            log=print,
        )
        onnx_path = out
        precision = (
            "int8 (QDQ: per-channel int8 weights, uint8 activations; the output head float32)"
            if info.quantization == "int8"
            else "float32"
        )
        print(f"wrote {out} ({_megabytes(out)}): ONNX opset {opset}, {precision}")
    else:
        from fg_depth_core.deploy.tensorrt_build import engine_info_path

        onnx_path = out.with_suffix(".onnx")
        workspace = (InferenceConfig().workspace_mb if args.workspace is None else args.workspace) * 2**20
        info = export.export_engine(
            checkpoint,
            out,
            height,
            width,
            args.precision,
            workspace,
            args.timing_cache,
            onnx_path=onnx_path,
            opset=opset,
            max_batch=args.max_batch,
        )
        print(f"wrote {out} ({_megabytes(out)}): TensorRT engine, {args.precision}")
        print(f"  metadata {engine_info_path(out)}")
        print(f"  ONNX model {onnx_path} ({_megabytes(onnx_path)}), opset {opset}")
    batch = "1" if args.static_batch else "batch"
    h, w = info.height, info.width
    print(f"  input  {export.INPUT_NAME!r} ({batch},3,{h},{w}) float32 RGB in [0,1]")
    depth_range = f"{info.min_depth:g}..{info.max_depth:g}"
    print(f"  output {export.OUTPUT_NAME!r} ({batch},1,{h},{w}) float32 metres in {depth_range}")
    line = (
        f"  training camera at {w}x{h}: focal {info.train_focal:.2f} px, baseline {info.train_baseline:.3f} m"
    )
    if (train_w, train_h) != (w, h):
        line += f" (trained at {train_w}x{train_h}: focal {train_focal:.2f} px)"
    print(line)
    if train_w * h != train_h * w:
        print(
            f"  note: the aspect ratio differs from training ({train_w}x{train_h}): images are stretched to "
            f"{w}x{h}; depth scales with the horizontal focal length"
        )
    return 0
