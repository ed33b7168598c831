"""``fg-depth bag-info``: what a rosbag2 recording offers for training (topics, rates, stereo sync, camera
calibration, baseline) and the command that trains on it."""

from __future__ import annotations

import argparse
import dataclasses

EPILOG = """\
examples:
  fg-depth bag-info ~/bags/run1                       # topics; guesses the stereo pair from the names
  fg-depth bag-info ~/bags/run1.mcap --left /cam0/image_raw --right /cam1/image_raw
  fg-depth bag-info ~/bags/run1 --left /left/image_raw/compressed --right /right/image_raw/compressed \\
      --left-info /left/camera_info --right-info /right/camera_info --slop 0.02

Exit status 0 when the bag can train a model (synced pairs, decodable images, camera infos of a stereo
pair), 2 with the reason otherwise.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bag-info",
        help="check a rosbag2 recording for training: topics, sync, calibration, baseline",
        description="Summarise a rosbag2 recording (sqlite3 or MCAP) and check it can train FG-Depth.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bag", metavar="BAG", help="rosbag2 folder (with metadata.yaml) or a .mcap / .db3 file")
    add_topic_arguments(p)
    p.add_argument("--slop", type=float, default=None, help="pairing tolerance in seconds (data.bag.slop)")
    p.add_argument("--config", default=None, help="YAML config whose data.bag and data.width are used")
    p.set_defaults(func=run)


def add_topic_arguments(p: argparse.ArgumentParser) -> None:
    """--left/--right/--left-info/--right-info (shared with ``fg-depth train --bag``)."""
    p.add_argument("--left", metavar="TOPIC", help="left image topic (sensor_msgs/Image or CompressedImage)")
    p.add_argument("--right", metavar="TOPIC", help="right image topic")
    p.add_argument(
        "--left-info", metavar="TOPIC", help="left CameraInfo topic (default: the image topic's camera_info)"
    )
    p.add_argument("--right-info", metavar="TOPIC", help="right CameraInfo topic")


def topic_overrides(args: argparse.Namespace) -> list:
    """``--set``-style overrides (KEY=VALUE) for the topic options that were given."""
    import json

    keys = (
        ("left", "left_topic"),
        ("right", "right_topic"),
        ("left_info", "left_info_topic"),
        ("right_info", "right_info_topic"),
    )
    # JSON strings are valid YAML scalars, so topic names survive the YAML parse of --set values.
    return [f"data.bag.{key}={json.dumps(getattr(args, arg))}" for arg, key in keys if getattr(args, arg)]


def run(args: argparse.Namespace) -> int:
    from fg_depth_core.config import INPUT_MULTIPLE, load_config
    from fg_depth_core.data.bag import (
        NS,
        BagError,
        bag_reader,
        guess_stereo_topics,
        iter_pairs,
        open_stereo,
        suggest_input_size,
        topic_stats,
    )

    overrides = topic_overrides(args)
    if args.slop is not None:
        overrides.append(f"data.bag.slop={args.slop}")
    cfg = load_config(args.config, overrides)
    bag_cfg = cfg.data.bag
    with bag_reader(args.bag) as reader:
        stats = topic_stats(reader)
        duration = reader.duration / NS if reader.message_count else 0.0
        print(f"bag: {args.bag}")
        print(f"  {reader.message_count} messages over {duration:.2f} s")
        print("topics:")
        width = max([len(n) for n in stats] + [5])
        for name in sorted(stats):
            s = stats[name]
            print(f"  {name:<{width}}  {s.msgtype:<32} {s.count:>7} msgs  {s.rate_hz:7.2f} Hz")
        if not (bag_cfg.left_topic and bag_cfg.right_topic):
            guess = guess_stereo_topics(stats)
            if guess is None:
                raise BagError(
                    f"{args.bag}: cannot tell which image topics form the stereo pair (listed above); pass "
                    "--left and --right"
                )
            bag_cfg = dataclasses.replace(
                bag_cfg,
                left_topic=bag_cfg.left_topic or guess[0],
                right_topic=bag_cfg.right_topic or guess[1],
            )
            print(f"stereo pair (guessed from the names): {bag_cfg.left_topic} + {bag_cfg.right_topic}")
        stereo = open_stereo(reader, args.bag, bag_cfg)
        sync = stereo.sync
        print(f"sync (slop {bag_cfg.slop * 1e3:.1f} ms):")
        print(f"  {sync.left} left, {sync.right} right images -> {sync.pairs} pairs")
        print(
            f"  stamp offset within pairs: median {sync.median_offset_ms:.3f} ms, "
            f"max {sync.max_offset_ms:.3f} ms"
        )
        print(f"  selected by data.bag (start/duration/stride/max_frames): {len(stereo.selected)} pairs")
        rect = stereo.rectifier
        print(f"camera infos: {stereo.left_info_topic} + {stereo.right_info_topic}")
        for side, calib in (("left", rect.left), ("right", rect.right)):
            state = "raw (distorted and/or rotated)" if calib.is_raw() else "rectified (D = 0, R = I)"
            print(f"  {side}: {calib.width}x{calib.height} {calib.model}, {state}")
        if stereo.calibration_changes:
            print(
                f"  warning: the calibration changes {stereo.calibration_changes} time(s); the first is used"
            )
        print(f"  rectification: {rect.describe()}")
        print(f"  baseline: {rect.rig.baseline:.4f} m (from the P matrices' Tx)")
        print(
            f"  disparity offset cx_r - cx_l: {rect.rig.doffs:.3f} px (depth = fx * baseline / "
            "(disparity + offset))"
        )
        for note in rect.rig.notes:
            print(f"  calibration residual accepted: {note}")
        # Decoding one pair proves the encodings are supported and the sizes match the camera infos.
        first = dataclasses.replace(stereo, selected=stereo.selected[:1], stamps=stereo.stamps[:1])
        for _stamp, pair in iter_pairs(reader, first):
            h, w = pair.left.shape[:2]
            print(f"  first pair decodes: {w}x{h} after rectification")
    k = rect.rig.intrinsics
    net_w, net_h = suggest_input_size(k.width, k.height, cfg.data.width, INPUT_MULTIPLE)
    print("train on it with:")
    print(
        f"  fg-depth train --bag {args.bag} --left {bag_cfg.left_topic} --right {bag_cfg.right_topic} "
        f"--out runs/mybag --set data.width={net_w} --set data.height={net_h}"
    )
    return 0
