"""bench/ablation.py over paired seeds and bench/gpu_train.py: the statistics (tools/paired_stats.py), the
tables (tools/ablation_report.py), and both scripts end to end at a tiny budget (slow)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from fg_depth_core.metrics import METRIC_NAMES
from tools.ablation_report import complete_seeds, seeds_report
from tools.paired_stats import mean_sd, paired_difference, t_cdf, t_quantile

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "df, quantile",
    # Student's t at 0.975 from the standard tables.
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452)],
)
def test_t_quantiles_match_the_tables(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=2e-4)
    assert t_quantile(0.025, df) == pytest.approx(-quantile, abs=2e-4)
    assert t_cdf(quantile, df) == pytest.approx(0.975, abs=1e-5)


def test_mean_sd_and_paired_difference_by_hand():
    assert mean_sd([1.0, 2.0, 3.0, 6.0]) == pytest.approx((3.0, math.sqrt(14 / 3)))
    mean, sd = mean_sd([5.0])
    assert mean == 5.0 and math.isnan(sd)
    # Differences b - a: 0.1, 0.2, 0.3, 0.2, 0.2 -> mean 0.2, sd sqrt(0.02 / 4), n = 5, t = 2.7764.
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [1.1, 2.2, 3.3, 4.2, 5.2]
    d = paired_difference(a, b)
    half = 2.7764 * math.sqrt(0.005) / math.sqrt(5)
    assert d.mean == pytest.approx(0.2) and d.sd == pytest.approx(math.sqrt(0.005))
    assert (d.low, d.high) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-4)
    assert d.excludes_zero and d.n == 5
    # Pairing matters: the same values unpaired would spread over 1..5 and include 0.
    shuffled = paired_difference(a, [5.2, 4.2, 3.3, 2.2, 1.1])
    assert not shuffled.excludes_zero
    with pytest.raises(ValueError, match="at least two pairs"):
        paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="as many"):
        paired_difference([1.0, 2.0], [2.0])


def _metrics(abs_rel: float) -> dict:
    return {k: (abs_rel if k == "abs_rel" else 1.0) for k in METRIC_NAMES}


def test_seeds_report_tables_and_verdicts():
    results = {
        "baseline": {0: _metrics(0.30), 1: _metrics(0.20), 2: _metrics(0.25)},
        "fgdepth": {0: _metrics(0.28), 1: _metrics(0.17), 2: _metrics(0.23), 3: _metrics(0.1)},
    }
    assert complete_seeds(results, ["baseline", "fgdepth"]) == [0, 1, 2]
    report = seeds_report(results, ["baseline", "fgdepth"])
    assert report["seeds"] == [0, 1, 2]
    rows = {line.split(" | ")[0]: line for line in report["means"][2:]}
    assert rows["| baseline"].split(" | ")[1] == "0.2500 ± 0.0500"
    assert report["per_seed"][0] == "| abs_rel | seed 0 | seed 1 | seed 2 |"
    assert report["per_seed"][3] == "| fgdepth | 0.2800 | 0.1700 | 0.2300 |"
    # Differences -0.02, -0.03, -0.02: mean -0.02333, sd 0.005774, half-width 4.3027 * sd / sqrt(3).
    half = 4.3027 * 0.0057735 / math.sqrt(3)
    diff_row = report["differences"][2]
    assert diff_row.startswith(f"| fgdepth | -0.0233 [{-0.02333 - half:+.4f}, {-0.02333 + half:+.4f}] *")
    assert diff_row.endswith("| 3 of 3 |")
    assert report["verdicts"][0].startswith("fgdepth is better than baseline in abs_rel over 3 paired seeds")
    with pytest.raises(ValueError, match="no seed"):
        seeds_report({"baseline": {0: _metrics(0.3)}, "fgdepth": {1: _metrics(0.2)}}, ["baseline", "fgdepth"])


@pytest.mark.slow
def test_ablation_over_two_seeds_end_to_end(tmp_path):
    out, results = tmp_path / "out", tmp_path / "RESULTS.md"
    argv = [
        sys.executable, str(ROOT / "bench" / "ablation.py"), "--steps", "1", "--batch-size", "2",
        "--width", "128", "--height", "64", "--train-frames", "2", "--val-frames", "2", "--test-frames", "2",
        "--seeds", "2", "--presets", "baseline", "--variant", "md2", "fgdepth", "loss.dr_units=monodepth2",
        "--set", "teacher.sgbm.num_disparities=16", "--jobs", "2", "--out", str(out),
        "--results", str(results),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stored = json.loads((out / "ablation.json").read_text())["runs"]
    assert sorted(stored) == ["baseline", "md2"] and all(sorted(r) == ["0", "1"] for r in stored.values())
    # Paired: both rows of a seed share its world; the two seeds have different worlds.
    for seed in (0, 1):
        assert (out / f"seed{seed}" / "md2" / "config.yaml").read_text().count(f"seed: {seed}") == 2
    text = results.read_text()
    assert "## Ablation on the built-in world" in text
    assert "| md2 | " in text and " ± " in text and "| preset - baseline |" in text
    assert "md2 = fgdepth with loss.dr_units=monodepth2" in text
    # --resume reuses every finished run: nothing is trained again.
    again = subprocess.run(argv + ["--resume", "--no-write"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "== seed" not in again.stdout and "runs," not in again.stdout


@pytest.mark.slow
def test_gpu_train_runs_its_code_path_on_the_cpu_and_checks_the_heads(tmp_path):
    report = tmp_path / "r.json"
    argv = [
        sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--device", "cpu", "--autocast", "bfloat16",
        "--steps", "3", "--warmup", "1", "--batch-size", "2", "--width", "128", "--height", "64",
        "--train-frames", "4", "--test-frames", "2", "--workers", "0", "--out", str(tmp_path / "out"),
        "--json", str(report),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(report.read_text())["results"]
    assert [r["preset"] for r in results] == ["baseline", "fgdepth"]
    for r in results:
        # Four heads per step, three steps; the encoder ran in bfloat16 every step.
        assert r["head_dtypes"] == {"float32": 12} and r["encoder_dtypes"] == {"bfloat16": 3}
        assert r["autocast"] == "bfloat16" and r["timed_steps"] == 1 and r["steps_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(2 * r["steps_per_s"])
        assert 0 < r["metrics"]["abs_rel"] < 10 and r["metrics"]["frames"] == 2
    assert "## Training on a GPU" in done.stdout
    # A CPU run has no automatic autocast dtype: it must name one (else nothing would be checked).
    plain = subprocess.run(argv[:4] + ["--autocast", "auto"] + argv[6:], capture_output=True, text=True)
    assert plain.returncode != 0 and "needs --autocast bfloat16" in plain.stderr
