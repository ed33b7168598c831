"""``make demo``: FG-Depth end to end on the built-in world, through the ROS node, into one folder.

    python -m tools.demo --out outputs/demo          # config/demo.yaml: minutes on a 2-core CPU
    python -m tools.demo --out /tmp/demo --quick     # the whole pipeline at a tiny budget (the test)

Stages, each announced by a header line:

1. render: the built-in world's train, val and test splits as stereo folders with exact depth (OUT/world;
   frames already there are kept, so a second run renders nothing).
2. train: FG-Depth with :class:`~fg_depth_core.train.trainer.Trainer` (teacher cache, tqdm bars, TensorBoard,
   ``last.pt``/``best.pt`` in OUT/run, rebuilt from scratch on every run).
3. export: ``last.pt`` -> OUT/run/depthnet.onnx (:func:`~fg_depth_core.deploy.export.export_onnx`).
4. ROS: depth_node (the ONNX model), play (the world's test split, a mono camera) and a recorder, three nodes
   on one executor in this process, on an rclpy context of a private ROS domain. play publishes one frame
   and the demo waits for the node's depth and point cloud before the next, so no frame is dropped and each
   latency is one inference, not a queue.
5. results: per recorded frame a side-by-side PNG (input | node depth | SGBM teacher depth | ground truth),
   a rendered view of the node's point cloud, the loss curves of the paper's Fig. 3 at three pixels,
   metrics.json (depth metrics against ground truth, the node's latency, the training run), the node's
   depth maps (node_depth.npz) and summary.md, which is also printed.

Every number printed or written is measured in this run. The settings are config/demo.yaml (keys that differ
from config/default.yaml; ``data.synth.test_frames`` is the number of frames played); ``--quick`` uses
config/train_tiny.yaml with QUICK_STEPS training steps instead.

Run from the repository root (tools/ is not installed). The modules: ``settings`` (the run's config, the
output folder's layout, DemoError), ``pipeline`` (the stages in order), ``ros_session`` (stage 4),
``scoring``, ``figures`` and ``report`` (stage 5), ``ros_adapter`` (all the demo uses of fg_depth_ros) and
``cli`` (the options).
"""
