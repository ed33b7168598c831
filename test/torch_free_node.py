"""Run by test/ros/test_node_torch_free.py in a fresh interpreter: depth_node serves frames from an ONNX
model in mono and in stereo (with the online stereo scale, the cloud, disparity and the colour image all
subscribed), then prints one JSON line saying whether torch was ever imported.
``python torch_free_node.py MODEL WIDTH HEIGHT [tensorrt]``: with ``tensorrt`` MODEL is an engine run by the
tensorrt backend on the stand-ins of TensorRT and libcudart (gpu_fakes.py), the driver reporting one GPU."""

import json
import sys

import numpy as np
import rclpy
from depth_node_helpers import Harness, camera_messages, make_context, random_rgb
from gpu_fakes import FakeTensorRTRuntime, install_fakes

from fg_depth_core.camera import Intrinsics

#: Frames each mode must publish; the disparity (pixels) between the synthetic stereo views.
FRAMES, SHIFT = 3, 6


def serve(model: str, width: int, height: int, stereo: bool, backend: str, device: str) -> int:
    ctx = make_context()
    intr = Intrinsics(80.0, 80.0, (width - 1) / 2, (height - 1) / 2, width, height)
    params = {"model": model, "backend": backend, "device": device}
    if stereo:
        params.update({"mode": "stereo", "scale_source": "stereo", "scale.min_valid_fraction": 1e-3})
        inputs = ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")
    else:
        inputs = ("image", "camera_info")
    harness = Harness(ctx, params, inputs=inputs)
    try:
        for frame in range(FRAMES):
            stamp = (frame + 1) * 100_000_000
            left = random_rgb(height, width, frame)
            image, info = camera_messages(left, intr, stamp)
            if stereo:
                right = np.roll(left, -SHIFT, axis=1)  # every pixel SHIFT px left in the right view
                right_image, right_info = camera_messages(right, intr, stamp, tx=-intr.fx * 0.5)
                harness.publish(
                    left__image_rect=image, right__image_rect=right_image,
                    left__camera_info=info, right__camera_info=right_info,
                )  # fmt: skip
            else:
                harness.publish(camera_info=info, image=image)
            topics = ["depth/image", "points", "depth/color/image"]
            topics += ["disparity", "scale"] if stereo else []
            for topic in topics:
                harness.wait_outputs(topic, frame + 1)
        harness.spin_until(lambda: harness.node.wait_idle(0.0))
        assert harness.node.errors == 0 and harness.node.rejected == 0, harness.node.last_problem
        if stereo:
            assert harness.node.scale.measurements > 0, harness.node.last_problem
        return harness.node.published
    finally:
        harness.close()
        rclpy.shutdown(context=ctx)


def fake_tensorrt(engine: str) -> FakeTensorRTRuntime:
    """Stand in for TensorRT and libcudart (and the driver's device count) for the engine ``engine``."""
    from fg_depth_core.deploy.tensorrt_build import read_engine_info

    info, _ = read_engine_info(engine)
    return install_fakes(info.height, info.width)[1]


def main() -> None:
    model, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tensorrt = sys.argv[4:] == ["tensorrt"]
    backend, device = ("tensorrt", "cuda") if tensorrt else ("onnxruntime", "cpu")
    fake = fake_tensorrt(model) if tensorrt else None
    published = {
        mode: serve(model, width, height, mode == "stereo", backend, device) for mode in ("mono", "stereo")
    }
    runs = len(fake.runs) if fake else None
    print(json.dumps({"published": published, "torch": "torch" in sys.modules, "engine_runs": runs}))


if __name__ == "__main__":
    main()
