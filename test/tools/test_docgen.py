"""The generators' shared command line (tools.docgen.run_cli) and Markdown helpers, and the generators as
commands run the way the README says (``python -m tools.config_doc --check`` in the repository root)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tools.docgen import anchor, markdown, run_cli, table_cell

ROOT = Path(__file__).resolve().parents[2]


def _documents():
    return {"docs/a.md": lambda: "alpha\n", "config/b.yaml": lambda: "beta: 1\n"}


def test_run_cli_writes_every_document_under_the_root(tmp_path, capsys):
    assert run_cli(["--root", str(tmp_path)], _documents(), "python -m tools.x", "test") == 0
    assert (tmp_path / "docs" / "a.md").read_text() == "alpha\n"
    assert (tmp_path / "config" / "b.yaml").read_text() == "beta: 1\n"
    assert capsys.readouterr().out.count("wrote ") == 2


def test_run_cli_check_passes_when_current_and_fails_with_a_diff_when_not(tmp_path, capsys):
    run_cli(["--root", str(tmp_path)], _documents(), "python -m tools.x", "test")
    capsys.readouterr()
    assert run_cli(["--root", str(tmp_path), "--check"], _documents(), "python -m tools.x", "test") == 0
    (tmp_path / "config" / "b.yaml").write_text("beta: 2\n")
    (tmp_path / "docs" / "a.md").unlink()
    assert run_cli(["--root", str(tmp_path), "--check"], _documents(), "python -m tools.x", "test") == 1
    err = capsys.readouterr().err
    assert "a.md: missing; generate it with: python -m tools.x" in err
    assert "b.yaml is out of date; regenerate it with: python -m tools.x" in err
    assert "-beta: 2" in err and "+beta: 1" in err
    assert (tmp_path / "config" / "b.yaml").read_text() == "beta: 2\n"  # --check never writes


@pytest.mark.slow
@pytest.mark.parametrize("module", ["tools.config_doc", "tools.node_doc"])
def test_generators_run_as_modules_from_the_repository_root(module):
    done = subprocess.run(
        [sys.executable, "-m", module, "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "is up to date" in done.stdout


def test_markdown_helpers():
    assert table_cell("a | b\nc") == "a \\| b c"
    assert anchor("play: datasets as camera topics") == "play-datasets-as-camera-topics"
    assert anchor("`data.synth`") == "datasynth"
    assert markdown("Use ``x``\n  here.\n\nSecond.") == "Use `x` here.\n\nSecond."
