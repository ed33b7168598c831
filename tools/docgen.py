"""What the generated files (docs/CONFIG.md, docs/NODE.md, config/default.yaml) share: Markdown helpers and
the command line that writes them or checks that the committed copies are current.

    python -m tools.GENERATOR            # (re)writes its files under the repository root
    python -m tools.GENERATOR --check    # exit status 1 and a diff when a committed file differs
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional

#: The repository root (tools/ lives in it); generated paths are relative to it.
ROOT = Path(__file__).resolve().parents[1]


def table_cell(text: Any) -> str:
    """``text`` made safe for a Markdown table cell (pipes escaped, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces -> hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def format_default(value: Any) -> str:
    """A default as it is written in YAML (JSON flow style, which YAML reads): "", 0.0001, [0.75], true."""
    try:
        return json.dumps(value)
    except TypeError:
        return json.dumps(str(value))


def markdown(text: str) -> str:
    """Docstring or help text as one Markdown paragraph per blank-line-separated block (rST `` -> `)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def check(path: Path, expected: str, command: str) -> Optional[str]:
    """None when ``path`` holds ``expected``; otherwise what differs and the command that regenerates it."""
    if not path.is_file():
        return f"{path}: missing; generate it with: {command}"
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return None
    diff = difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), f"{path} (committed)", f"{path} (generated)",
        lineterm="", n=1,
    )
    shown = list(diff)[:40]
    return f"{path} is out of date; regenerate it with: {command}\n" + "\n".join(shown)


def run_cli(
    argv: Optional[List[str]],
    documents: Mapping[str, Callable[[], str]],
    command: str,
    description: str,
) -> int:
    """The command line of a generator: write each of ``documents`` ({path relative to the root: render
    function}), or with ``--check`` compare the files with the generated text (exit status 1 and a diff
    for each that differs). ``--root`` names another repository root (default: this checkout)."""
    parser = argparse.ArgumentParser(prog=command, description=description)
    parser.add_argument(
        "--check", action="store_true",
        help="compare the files with the generated text; exit status 1 if any differs",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=f"repository root (default: {ROOT})")
    args = parser.parse_args(argv)
    status = 0
    for name, render in documents.items():
        path = args.root / name
        text = render()
        if args.check:
            problem = check(path, text, command)
            if problem:
                print(problem, file=sys.stderr)
                status = 1
            else:
                print(f"{path} is up to date")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return status
