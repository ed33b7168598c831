"""fg_depth_ros: the ROS 2 adapter of fg_depth_core: messages, parameters, threads and timing, no method code.

Modules: depth_node (the node) with node_params (its parameter table), worker (newest-frame worker thread),
diagnostics and scale (online stereo scale correction); conversions (messages <-> numpy), sync
(approximate-time pairing when message_filters is absent), qos, play (datasets as camera topics) and train
(``ros2 run fg_depth_ros train``).
"""
