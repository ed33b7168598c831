"""``fg-depth export-gt``: a KITTI split's depth ground truth as Monodepth2's ``gt_depths.npz``, so that
predictions can be cross-checked with other codebases' evaluation scripts."""

from __future__ import annotations

import argparse

from fg_depth_core.commands.eval import missing_gt_message
from fg_depth_core.config import KITTI_GT_SOURCES, VELODYNE_DEPTHS, EvalConfig
from fg_depth_core.errors import FgDepthError


def register(sub: argparse._SubParsersAction) -> None:
    defaults = EvalConfig()
    p = sub.add_parser(
        "export-gt",
        help="write a KITTI split's ground truth as gt_depths.npz (Monodepth2's layout)",
        description="Write the depth ground truth of every frame of a KITTI split, in the split's order, in "
        "the layout Monodepth2's evaluate_depth.py reads: np.savez_compressed(OUT, data=<object array of "
        "(H,W) float32 maps in metres, 0 = none>); read it with np.load(OUT, allow_pickle=True)['data']. "
        "Each line's side picks the camera (l: image_02 with P_rect_02, r: image_03 with P_rect_03) and the "
        "map is that camera's, unmirrored; no image is read. The velodyne maps are the ones fg-depth eval "
        "--data kitti scores against (same options, same defaults). A frame without ground truth is an "
        "error: the file's order must match the split's.",
    )
    p.add_argument("--data-path", required=True, help="the KITTI raw root (it holds the date folders)")
    p.add_argument(
        "--split-file",
        default=None,
        help="split file or shipped split name (default: the KITTI test split fg-depth eval scores, Eigen's)",
    )
    p.add_argument("--out", required=True, metavar="GT.npz", help="output file, e.g. gt_depths.npz")
    p.add_argument(
        "--gt",
        choices=KITTI_GT_SOURCES,
        default=defaults.gt,
        help=f"ground truth: velodyne (the raw scan projected) or improved (proj_depth maps) (default: "
        f"{defaults.gt})",
    )
    p.add_argument(
        "--velodyne-depth",
        choices=VELODYNE_DEPTHS,
        default=defaults.velodyne_depth,
        help=f"what a velodyne point writes: velodyne_x (the published Eigen ground truth) or camera_z "
        f"(default: {defaults.velodyne_depth})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from fg_depth_core.data.factory import resolve_package_path
    from fg_depth_core.data.kitti import DEFAULT_SPLITS, KittiRaw
    from fg_depth_core.data.kitti_gt import write_gt_depths

    split = resolve_package_path(args.split_file) if args.split_file else DEFAULT_SPLITS["test"]
    data = KittiRaw(
        args.data_path, split, gt=args.gt, velodyne_depth=args.velodyne_depth, target_only=True
    )
    missing = data.frames_without_gt()
    if missing:
        raise FgDepthError(
            f"{missing_gt_message(data, missing)}; the exported file must hold every frame of the split in "
            "order (pass a split of the frames you have)"
        )
    maps = []
    for index in tqdm(range(len(data)), desc="export-gt", unit="frame", dynamic_ncols=True):
        depth = data.ground_truth(index)
        if depth is None:  # the file vanished since the check above
            raise FgDepthError(f"{data.name(index)}: no ground truth at {data.gt_path(index)}")
        maps.append(depth)
    write_gt_depths(args.out, maps)
    sizes = sorted({f"{m.shape[1]}x{m.shape[0]}" for m in maps})
    points = sum(int(np.count_nonzero(m)) for m in maps)
    print(
        f"{len(maps)} {args.gt} ground-truth maps ({', '.join(sizes)}; {points / len(maps):.0f} pixels with "
        f"depth per map on average) -> {args.out}"
    )
    return 0
