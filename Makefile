# fg-depth developer tasks (GNU make). `make help` lists them.
# The venv is built from the system python3 and pinned by constraints.txt; fg_depth_ros is installed into it
# in editable mode (`pip install -e . --no-deps`), which puts `fg-depth` on .venv/bin and keeps the source
# tree importable; colcon builds (test/ros/test_colcon_build.py, ROS workspaces) are independent of it.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.fg-depth-setup.stamp
# Folders whose Python must parse and run on 3.10 (the oldest supported version); missing ones are skipped.
LINT_PATHS := $(wildcard fg_depth_core fg_depth_ros test bench launch tools) setup.py
PYTEST_ARGS ?=
# A folder of ROS 2 command-line tool wheels (ros2cli, launch, launch_ros, message_filters, ...) to install into
# the venv, for the tests that run `ros2 launch`, `ros2 param` and friends on a machine without ROS. Empty: none
# (on a ROS machine, source /opt/ros/$ROS_DISTRO/setup.bash instead). .ci/run sets it when ../shared has them.
ROS2_CLI_WHEELS ?=
CLI_STAMP := $(VENV)/.ros2-cli.stamp

.PHONY: help setup lint docs test test-fast demo clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) $(if $(ROS2_CLI_WHEELS),$(CLI_STAMP))  ## build .venv (pinned pip install; ROS2_CLI_WHEELS=DIR adds the ROS 2 CLI)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.py setup.cfg
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else \
		"fg-depth needs Python 3.10-3.12 for the venv, $(PYTHON) is %d.%d (set PYTHON=python3.X)" % v)'
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -r requirements-dev.txt -c constraints.txt
	$(VPY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

$(CLI_STAMP): $(STAMP) $(wildcard $(ROS2_CLI_WHEELS)/*.whl)
	@test -d "$(ROS2_CLI_WHEELS)" || { echo "ROS2_CLI_WHEELS=$(ROS2_CLI_WHEELS): no such folder" >&2; exit 1; }
	$(VPY) -m pip install --no-index --no-deps $(ROS2_CLI_WHEELS)/*.whl
	touch $@

lint: setup  ## ruff (style, imports, 3.10 syntax) and vermin (3.10 library compatibility)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin -t=3.10- --no-tips --violations --eval-annotations $(LINT_PATHS)

docs: setup  ## regenerate docs/CONFIG.md, config/default.yaml and docs/NODE.md from the code (tools/)
	$(VPY) -m tools.config_doc
	$(VPY) -m tools.node_doc

test: setup lint  ## lint, then the whole pytest suite (per-test timeout from pytest.ini); CI runs this
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup  ## the quick loop: every test not marked slow, no lint (pytest -m core / ros / tools for one area)
	$(VPY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

demo: setup  ## FG-Depth end to end (render, train for minutes, ONNX, depth_node + play on rclpy) into outputs/demo
	$(VPY) -m tools.demo --out outputs/demo

clean:  ## remove build products and caches (keeps .venv and outputs/)
	rm -rf build install log .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean  ## clean, and remove .venv too
	rm -rf $(VENV)
