"""The source checkout the tools run in: its root, found in one place, and a clear error when a file they
need is not there (an installed package without its repository, a tools/ folder copied elsewhere)."""

from __future__ import annotations

from pathlib import Path

from fg_depth_core.errors import FgDepthError

#: The repository root: the folder holding tools/ (and config/, docs/, setup.py).
ROOT = Path(__file__).resolve().parents[1]


class CheckoutError(FgDepthError):
    """A file the tools expect in the source checkout is missing."""


def require(path: Path, needed_by: str) -> Path:
    """``path`` (a file or folder of the checkout, e.g. ``ROOT / "config" / "demo.yaml"``) if it exists;
    CheckoutError naming it and ``needed_by`` otherwise."""
    if not path.exists():
        raise CheckoutError(
            f"{path}: not found: {needed_by} runs from a source checkout of fg-depth (the repository with "
            "its config/ and docs/ folders), e.g. `python -m tools.demo` in the repository root"
        )
    return path
