"""The helpers with which bench/ writes docs/RESULTS.md: section replacement, the inference sections of
bench/inference.py with issue 4's verdicts, the machine line."""

from __future__ import annotations

import pytest

from fg_depth_core.commands.bench import best_run, cpu_model, summarize, usable_cores
from tools.inference_report import CPU_SECTION, section, verdicts
from tools.results import machine_description, replace_section, write_section


def test_bench_statistics_targets_and_results_section_replacement():
    stats = summarize([0.001] * 4, [0.1, 0.1, 0.1, 0.5], [0.002] * 4)
    assert stats["p50_ms"] == pytest.approx(103.0) and stats["forward_ms"] == pytest.approx(100.0)
    assert stats["p95_ms"] == pytest.approx(103.0 + 0.85 * 400.0)  # linear interpolation between 103 and 503
    assert stats["fps"] == pytest.approx(4 / 0.812)
    row = {"device": "cpu", "precision": "fp32", "network": "640x192", "load_s": 1.0, "peak_rss_mib": 900.0}
    torch_row = {**row, **stats, "backend": "torch"}
    ort_row = {**row, **summarize([0.001] * 4, [0.05] * 4, [0.002] * 4), "backend": "onnxruntime"}
    lines = verdicts([torch_row, ort_row])
    assert (
        "640x192: ONNX Runtime runs 3.83x the throughput of eager PyTorch (target >= 1.8x: met)" in lines[0]
    )
    assert "onnxruntime 6.0%, torch 3.0% of the forward pass (target < 10%: met)" in lines[1]
    text = (
        "# Results\n\nIntro.\n\n## Ablation on the built-in world\n\nTable A.\n\n" + CPU_SECTION + "\n\nold\n"
    )
    new = section(
        CPU_SECTION, [torch_row, ort_row, {**row, "backend": "tensorrt", "error": "not here"}], "cmd", []
    )
    updated = replace_section(text, CPU_SECTION, new)
    assert "## Ablation on the built-in world\n\nTable A.\n" in updated and "old" not in updated
    assert (
        updated.count(CPU_SECTION) == 1
        and "| tensorrt | cpu | fp32 | 640x192 | failed: not here |" in updated
    )
    assert replace_section(updated, CPU_SECTION, new) == updated
    # Repeated runs: the least disturbed (lowest p50) is kept, with the range of p50 over the runs.
    slow = {**torch_row, "p50_ms": 150.0}
    best = best_run([slow, {"error": "killed"}, torch_row])
    assert best is not torch_row and best["p50_ms"] == torch_row["p50_ms"] and best["runs"] == 2
    assert best["p50_runs_ms"] == pytest.approx([103.0, 150.0])
    assert "| 103.0 | 443.0 | 103-150 (2) | 4.93 |" in "\n".join(
        section(CPU_SECTION, [best], "cmd", []).splitlines()
    )
    assert best_run([{"error": "a"}, {"error": "b"}]) == {"error": "b"}
    appended = replace_section(
        "# Results\n\n## Ablation on the built-in world\n\nTable A.\n", CPU_SECTION, new
    )
    assert appended.index("Table A.") < appended.index(CPU_SECTION)


def test_write_section_creates_the_file_then_replaces_only_its_section(tmp_path):
    path = tmp_path / "docs" / "RESULTS.md"
    write_section(path, "## A", "## A\n\nfirst\n")
    assert path.read_text() == "# Results\n\n## A\n\nfirst\n"
    path.write_text(path.read_text() + "\n## B\n\nkept\n")
    write_section(path, "## A", "## A\n\nsecond\n")
    assert path.read_text() == "# Results\n\n## A\n\nsecond\n\n## B\n\nkept\n"


def test_the_machine_line_names_cores_cpu_and_versions():
    import torch

    line = machine_description()
    assert line.startswith(f"{usable_cores()} CPU cores (nproc), {cpu_model()}, Python ")
    assert f"torch {torch.__version__}" in line
