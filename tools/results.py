"""docs/RESULTS.md as the bench/ scripts write it: one level-2 section per benchmark, replaced in place, and
the line that says which machine measured it."""

from __future__ import annotations

import re
from pathlib import Path

from tools.checkout import ROOT

RESULTS_MD = ROOT / "docs" / "RESULTS.md"


def replace_section(text: str, title: str, new: str) -> str:
    """``text`` with the section ``title`` (up to the next level-2 heading) replaced by ``new``, or with
    ``new`` appended."""
    pattern = re.compile(rf"^{re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: new + "\n", text, count=1).rstrip("\n") + "\n"
    if not text.strip():
        text = "# Results\n"
    return text.rstrip("\n") + "\n\n" + new


def write_section(path: Path, title: str, new: str) -> None:
    """Replace (or append) the section ``title`` of the markdown file ``path`` (created if missing)."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(old, title, new))


def machine_description() -> str:
    """Cores, CPU model, Python and library versions, GPU: the "Machine:" line of a section."""
    from fg_depth_core.commands.bench import machine_info

    info = machine_info()
    parts = [f"{info['cores']} CPU cores (nproc), {info['cpu']}", f"Python {info['python']}"]
    parts.append(f"torch {info['torch']}")
    if info["onnxruntime"]:
        parts.append(f"onnxruntime {info['onnxruntime']}")
    if info["gpu"]:
        parts.append(f"GPU {info['gpu']}")
    return ", ".join(parts)
