"""Repository tooling of fg-depth: run from the root of a source checkout, never installed.

The demo (``python -m tools.demo``, ``make demo``), the helpers with which the scripts in bench/ write
docs/RESULTS.md, and the generators of the docs. The installed packages (fg_depth_core, fg_depth_ros) never
import from here.
"""
