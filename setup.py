"""Build script of the ROS 2 ament_python package fg_depth_ros (installs fg_depth_core and fg_depth_ros)."""

import os
import re

from setuptools import find_packages, setup

PACKAGE_NAME = "fg_depth_ros"
HERE = os.path.dirname(os.path.abspath(__file__))
# Installed under share/<package>/<dir>/..., keeping sub-folders; a missing or empty one installs nothing.
SHARE_DIRS = ("launch", "config", "rviz")


def read_version() -> str:
    """The version from fg_depth_core/__init__.py, read as text so that building never imports the package."""
    with open(os.path.join(HERE, "fg_depth_core", "__init__.py"), encoding="utf-8") as handle:
        match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", handle.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError("fg_depth_core/__init__.py has no __version__ = '...' line")
    return match.group(1)


def share_data_files() -> list:
    """(install dir, [files]) pairs for every file under SHARE_DIRS, paths relative to this file."""
    pairs = []
    for top in SHARE_DIRS:
        for root, dirs, files in os.walk(os.path.join(HERE, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            rel_root = os.path.relpath(root, HERE)
            kept = sorted(name for name in files if not name.endswith((".pyc", "~")))
            if kept:
                pairs.append((
                    os.path.join("share", PACKAGE_NAME, rel_root),
                    [os.path.join(rel_root, name) for name in kept],
                ))
    return pairs


setup(
    name=PACKAGE_NAME,
    version=read_version(),
    description="FG-Depth: flow-guided self-supervised monocular metric depth, with a ROS 2 adapter.",
    license="Apache-2.0",
    # Only the two libraries: test/, bench/, tools/ (repository tooling), launch/ and build folders never
    # become top-level packages.
    packages=find_packages(include=["fg_depth_core", "fg_depth_core.*", "fg_depth_ros", "fg_depth_ros.*"],
                           exclude=["test", "test.*"]),
    # Data files inside the libraries: the KITTI split lists (fg_depth_core/data/splits/README.md).
    package_data={"fg_depth_core.data": ["splits/README.md", "splits/*/*.txt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE_NAME]),
        ("share/" + PACKAGE_NAME, ["package.xml"]),
    ] + share_data_files(),
    # ROS packages come from rosdep and torch & co. from pip (README.md): nothing else is pulled in here.
    install_requires=["setuptools"],
    # The optional OpenVINO runtime of the openvino inference backend (pip install 'fg_depth_ros[openvino]').
    extras_require={"test": ["pytest"], "openvino": ["openvino"]},
    zip_safe=True,
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "fg-depth = fg_depth_core.cli:main",
            "train = fg_depth_ros.train:main",
            "play = fg_depth_ros.entry:play",
            "depth_node = fg_depth_ros.entry:depth_node",
            "depth_lifecycle_node = fg_depth_ros.entry:depth_lifecycle_node",
        ],
    },
)
