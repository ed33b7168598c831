"""fg_depth_core: the FG-Depth method (flow-guided self-supervised monocular depth) without ROS."""

__version__ = "0.1.0"
