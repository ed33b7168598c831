"""``fg-depth train``: train a DepthNet from a YAML config into a run directory (also ``ros2 run fg_depth_ros
train``, and ``torchrun --nproc_per_node=N -m fg_depth_core train ...`` for several GPUs)."""

from __future__ import annotations

import argparse
import json

from fg_depth_core.commands import add_set_argument
from fg_depth_core.commands.bag_info import add_topic_arguments, topic_overrides

EPILOG = """\
examples:
  fg-depth train --config config/train_synth.yaml --out runs/synth
  fg-depth train --config config/train_kitti_640x192.yaml --out runs/k640 --set data.path=/data/kitti_raw
  fg-depth train --out runs/synth --resume --set train.max_steps=6000    # continue, with more steps
  fg-depth train --bag ~/bags/run1 --left /cam0/image_raw --right /cam1/image_raw --out runs/mybot \\
      --config config/train_bag.yaml          # a robot's own stereo recording (see fg-depth bag-info)
  torchrun --nproc_per_node=4 -m fg_depth_core train --config config/train_kitti_1024x320.yaml \\
      --out runs/k1024 --set data.path=/data/kitti_raw

RUN_DIR receives config.yaml, last.pt (every train.checkpoint_every steps, at the end and on Ctrl-C),
best.pt (best validation), tensorboard/ (view with: tensorboard --logdir RUN_DIR), teacher_cache/ and, for
the built-in world, synth/, for a bag, bag_frames/ (its rectified pairs: a cache reused by --resume and
by runs with the same bag settings). With torchrun, train.batch_size is per process. Ctrl-C saves last.pt
and exits with status 130; --resume continues from it at the same step with the same data order.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train FG-Depth (checkpoints, resume, TensorBoard, multi-GPU with torchrun)",
        description="Train the monocular DepthNet self-supervised on stereo pairs, guided by the teacher.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(p)
    p.set_defaults(func=run)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fg-depth train`` (shared with ``ros2 run fg_depth_ros train``)."""
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (keys that differ from config/default.yaml); optional with --resume, which "
        "then uses the config stored in RUN_DIR/last.pt, and with --bag (the defaults then)",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory for checkpoints and logs")
    add_set_argument(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR/last.pt at its step with its optimiser state (refused if the model or data "
        "config differs)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    bag = p.add_argument_group(
        "training from a rosbag2 recording",
        "--bag sets data.dataset=bag and data.path; the topic options set data.bag.* (fg-depth bag-info BAG "
        "lists the topics)",
    )
    bag.add_argument("--bag", metavar="BAG", help="rosbag2 folder (with metadata.yaml) or .mcap / .db3 file")
    add_topic_arguments(bag)


def run(args: argparse.Namespace) -> int:
    from fg_depth_core.train.distributed import cleanup, init_distributed
    from fg_depth_core.train.trainer import Trainer, run_config

    overrides = topic_overrides(args)
    if args.bag:
        overrides = ["data.dataset=bag", f"data.path={json.dumps(str(args.bag))}", *overrides]
    overrides = [*overrides, *args.overrides]  # the user's --set values last: they win
    if args.bag and args.config is None and not args.resume:
        from fg_depth_core.config import load_config

        # A bag needs nothing but its topics: the built-in defaults (config/default.yaml) fill the rest.
        cfg = load_config(None, overrides)
    else:
        cfg = run_config(args.out, args.config, overrides, resume=args.resume)
    ctx = init_distributed(cfg.train.device)
    try:
        Trainer(cfg, args.out, resume=args.resume, ctx=ctx, progress=not args.no_progress).run()
    finally:
        cleanup(ctx)
    return 0
