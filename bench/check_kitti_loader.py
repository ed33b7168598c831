"""Dev check of the KITTI raw loader on real files (not a test: it needs a KITTI drive on disk).

Loads every frame under ROOT with KittiRaw, prints the rig (focal length, baseline), frame and ground-truth
counts and which Eigen test frames are present, then runs the SGBM teacher on one pair resized to the network
input size and writes ``<out>/kitti_<frame>.png``: the left image | the teacher's disparity (TURBO, black =
invalid).

    .venv/bin/python bench/check_kitti_loader.py [ROOT] [--out DIR] [--index I] [--size 640x192]
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fg_depth_core.config import TeacherConfig  # noqa: E402
from fg_depth_core.data.kitti import KittiRaw, read_split  # noqa: E402
from fg_depth_core.errors import FgDepthError  # noqa: E402
from fg_depth_core.teachers import build_teacher, teacher_disparity  # noqa: E402
from fg_depth_core.visualize import colorize_disparity  # noqa: E402

DEFAULT_ROOT = ROOT.parent / "shared" / "data" / "kitti_raw_0048"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "root", nargs="?", default=str(DEFAULT_ROOT), help="KITTI raw root (holds date folders)"
    )
    parser.add_argument("--out", default=str(ROOT / "outputs" / "check_kitti"), help="where the PNG goes")
    parser.add_argument("--index", type=int, default=0, help="frame to run the teacher on")
    parser.add_argument("--size", default="640x192", help="network input size WxH")
    parser.add_argument(
        "--num-disparities",
        type=int,
        default=0,
        help="SGBM search range in px (multiple of 16); 0 = enough for objects down to 2 m at this size",
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    data = KittiRaw(args.root, width=width, height=height)
    drives = collections.Counter(frame.folder for frame in data.frames)
    print(f"root: {data.root}")
    print(
        f"frames: {len(data)} in {len(drives)} drive(s): "
        + ", ".join(f"{d} ({n})" for d, n in drives.items())
    )
    raw = data.load(args.index)
    k = raw.rig.intrinsics
    print(f"frame {args.index}: {data.name(args.index)}, images {raw.left.shape[1]}x{raw.left.shape[0]}")
    print(
        f"rig at image size: fx={k.fx:.4f} fy={k.fy:.4f} cx={k.cx:.4f} cy={k.cy:.4f} px, "
        f"baseline={raw.rig.baseline:.6f} m (fx*B = {k.fx * raw.rig.baseline:.2f} px*m)"
    )
    sample = data[args.index]
    focal, baseline, doffs = (float(sample[k]) for k in ("focal", "baseline", "doffs"))
    print(f"rig at {width}x{height}: focal={focal:.4f} px, baseline={baseline:.6f} m, doffs={doffs:.4f} px")
    for note in raw.rig.notes:
        print(f"calibration residual accepted: {note}")
    sources = collections.Counter(data.depth_source(i) for i in range(len(data)))
    print("ground truth per frame: " + ", ".join(f"{s}: {n}" for s, n in sorted(sources.items(), key=str)))
    test = {frame.line() for frame in read_split("eigen/test")}
    present = sum(frame.line() in test for frame in data.frames)
    print(f"Eigen test frames under root: {present} of {len(test)}")

    # SGBM leaves the leftmost num_disparities columns unmatched: size the range to the rig, not the default.
    cfg = TeacherConfig()
    cfg.sgbm.num_disparities = args.num_disparities or 16 * math.ceil(focal * baseline / 2.0 / 16)
    cfg.validate("teacher")
    teacher = build_teacher(cfg, "cpu", use_cache=False)
    output = teacher.flow(sample["left"][None], sample["right"][None], target_is_left=True, doffs=doffs)
    disparity = teacher_disparity(output)
    valid = np.isfinite(disparity)
    depth = focal * baseline / (disparity[valid] + doffs)
    print(
        f"SGBM teacher at {width}x{height}, num_disparities={cfg.sgbm.num_disparities}: "
        f"{valid.mean():.1%} valid, median disparity {np.median(disparity[valid]):.2f} px, "
        f"median pseudo depth {np.median(depth):.2f} m, pseudo depth < 80 m on {np.mean(depth < 80.0):.1%} "
        f"of valid pixels"
    )

    left = (sample["left"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    panel = np.concatenate([left, colorize_disparity(disparity, cfg.sgbm.num_disparities)], axis=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"kitti_{args.index:04d}.png"
    cv2.imwrite(str(path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FgDepthError as error:
        sys.exit(f"error: {error}")
