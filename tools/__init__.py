"""Repository tooling of fg-depth: run from the root of a source checkout, never installed (setup.py installs
fg_depth_core and fg_depth_ros only).

The demo (``python -m tools.demo``, ``make demo``), the generators of the references in docs/
(``python -m tools.config_doc``, ``python -m tools.node_doc``) and the helpers with which the scripts in
bench/ write docs/RESULTS.md. The installed packages never import from here.
"""
