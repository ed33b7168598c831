"""Repository tooling: generators of the references in docs/, the demo and the benchmark helpers.

Not installed with the package (setup.py installs fg_depth_core and fg_depth_ros only): run it from the
repository root, e.g. ``python -m tools.config_doc``.
"""
