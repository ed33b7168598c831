"""fg_depth_ros: the ROS 2 adapter of fg_depth_core: messages, parameters, threads and timing, no method code.

The depth node, message conversions and dataset player land here in later versions.
"""
