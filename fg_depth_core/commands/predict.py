"""``fg-depth predict``: metric depth of image files with a checkpoint, an ONNX model or a TensorRT engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

from fg_depth_core.config import INFERENCE_BACKENDS, INPUT_FITS, PRECISIONS, InferenceConfig
from fg_depth_core.errors import FgDepthError

_DEFAULTS = InferenceConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="metric depth of images: NAME.npy (float32 metres) and a colourised NAME.png per image",
        description="Predict metric depth for each image with a checkpoint (.pt), an ONNX model (.onnx) or a "
        "TensorRT engine (.engine with its .json). Each image is fitted to the network input (--input-fit: "
        "pad, crop or stretch, for an image of another aspect), the depth is scaled by f'/f_train (f' = "
        "sqrt(fx*fy) of the camera at the network input, f_train = the training camera's) and resized back "
        "to the image. Writes OUT/NAME.npy ((H,W) float32 metres at the image's resolution; under "
        "--input-fit crop the centred window's) and OUT/NAME.png (colourised by inverse depth). Without --fx "
        "there is no focal scaling: the images are taken to show the scene as the training camera would.",
    )
    p.add_argument("--model", required=True, help="checkpoint (.pt), ONNX model (.onnx) or TensorRT engine")
    p.add_argument("--image", required=True, nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument(
        "--backend",
        default=_DEFAULTS.backend,
        choices=INFERENCE_BACKENDS,
        help="inference backend; auto = the fastest installed one that runs the model (default: %(default)s)",
    )
    p.add_argument(
        "--device", default=_DEFAULTS.device, help="auto, cpu, cuda or cuda:N (default: %(default)s)"
    )
    p.add_argument(
        "--precision",
        default=_DEFAULTS.precision,
        choices=PRECISIONS,
        help="fp16 on CUDA only (default: fp32)",
    )
    p.add_argument("--threads", type=int, default=_DEFAULTS.threads, help="CPU threads; 0 = library default")
    p.add_argument("--cache-dir", default=_DEFAULTS.cache_dir, help="TensorRT engine cache folder")
    p.add_argument(
        "--input-fit",
        default=_DEFAULTS.input_fit,
        choices=INPUT_FITS,
        help="an image of another aspect than the network's: pad (depth of the whole image), crop (the "
        "centred window only: the .npy is that window's size) or stretch (distorts the image) "
        "(default: %(default)s)",
    )
    camera = p.add_argument_group(
        "camera intrinsics (pixels of the images as given; the same camera for all of them)"
    )
    camera.add_argument("--fx", type=float, default=None, help="focal length x; enables focal scaling")
    camera.add_argument("--fy", type=float, default=None, help="focal length y (default: fx)")
    camera.add_argument("--cx", type=float, default=None, help="principal point x (default: image centre)")
    camera.add_argument("--cy", type=float, default=None, help="principal point y (default: image centre)")
    p.set_defaults(func=run)


def output_names(images: List[str]) -> Dict[str, str]:
    """Image path -> output stem (the file name without suffix); two images with one stem are an error."""
    names: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for image in images:
        stem = Path(image).stem
        if stem in seen and seen[stem] != image:
            raise FgDepthError(
                f"--image: {seen[stem]} and {image} would both write {stem}.npy; rename one of them"
            )
        seen[stem] = image
        names[image] = stem
    return names


def camera_for(args: argparse.Namespace, width: int, height: int):
    """The Intrinsics of an image of ``width`` x ``height`` from --fx/--fy/--cx/--cy, or None without --fx."""
    from fg_depth_core.camera import CameraError, Intrinsics

    if args.fx is None:
        if any(v is not None for v in (args.fy, args.cx, args.cy)):
            raise FgDepthError("--fy/--cx/--cy need --fx (the focal length decides the depth scale)")
        return None
    fy = args.fx if args.fy is None else args.fy
    cx = (width - 1) / 2 if args.cx is None else args.cx
    cy = (height - 1) / 2 if args.cy is None else args.cy
    try:
        return Intrinsics(args.fx, fy, cx, cy, width, height)
    except CameraError as exc:
        raise FgDepthError(f"--fx/--fy/--cx/--cy: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from fg_depth_core.deploy.estimator import DepthEstimator
    from fg_depth_core.image_io import read_rgb
    from fg_depth_core.visualize import colorize_depth

    if args.threads < 0:
        raise FgDepthError(f"--threads: expected >= 0, got {args.threads}")
    names = output_names(args.image)
    for image in args.image:  # fail before loading the model (which may build a TensorRT engine)
        if not Path(image).is_file():
            raise FgDepthError(f"--image {image}: file not found")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FgDepthError(f"--out {out}: cannot create the folder ({exc})") from None
    estimator = DepthEstimator(
        args.model,
        args.backend,
        args.device,
        args.precision,
        args.threads,
        args.cache_dir or None,
        input_fit=args.input_fit,
    )
    info = estimator.info
    print(
        f"model {args.model}: backend {estimator.backend_name} on {estimator.device} "
        f"({estimator.backend.precision}), network input {info.width}x{info.height}, training focal "
        f"{info.train_focal:.2f} px at that size; input fit {estimator.input_fit}"
    )
    if args.fx is None:
        print(
            "no intrinsics given (--fx): assuming the training camera scaled to each image, so no focal "
            "scaling; give --fx for metric depth of another camera"
        )
    notes = set()
    for image in args.image:
        rgb = read_rgb(image)
        h, w = rgb.shape[:2]
        camera = camera_for(args, w, h)
        note = estimator.aspect_note(camera, w, h)
        if note is not None and note not in notes:
            notes.add(note)
            print(f"warning: {note}")
        depth = estimator.predict(rgb, camera)
        stem = names[image]
        npy, png = out / f"{stem}.npy", out / f"{stem}.png"
        np.save(npy, depth.astype(np.float32))
        colour = colorize_depth(depth, info.min_depth, info.max_depth)
        if not cv2.imwrite(str(png), cv2.cvtColor(colour, cv2.COLOR_RGB2BGR)):
            raise FgDepthError(f"{png}: cannot write the image")
        factor = estimator.focal_factor(camera)
        x0, y0, win_w, win_h = estimator.fit_for(w, h).window
        cropped = f" (window {win_w}x{win_h} at {x0},{y0})" if depth.shape != (h, w) else ""
        print(
            f"{image}: {w}x{h}{cropped}, focal factor {factor:.4f}, depth min/median/max "
            f"{float(np.min(depth)):.2f} / "
            f"{float(np.median(depth)):.2f} / {float(np.max(depth)):.2f} m -> {npy}, {png}"
        )
    return 0
