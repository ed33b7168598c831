"""The performance benchmarks of issue 16 (bench/ceiling.py, bench/runtimes.py, bench/teacher_cost.py,
bench/quantization.py, bench/gpu_inference.py) and their shared helpers: the round-by-round ratios, the
sections they write, and what can run without a GPU (no timing is asserted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import ceiling, gpu_inference, quantization, runtimes, teacher_cost
from fg_depth_core.commands.bench import best_run, round_ratio, summarize
from tools.inference_report import verdicts
from tools.isolated import describe_ratios, load_phrase, median_seconds, per_round_ratio, run_isolated


def _row(backend, precision, fps_by_round, network="640x192"):
    forward = 1.0 / np.median(list(fps_by_round.values()))
    stats = summarize([0.001] * 3, [forward] * 3, [0.001] * 3)
    return {
        "backend": backend,
        "device": "cpu",
        "precision": precision,
        "network": network,
        **stats,
        "fps_by_round": fps_by_round,
    }


# --------------------------------------------------------------------------------------- ratios by round


def test_ratios_are_taken_within_rounds_and_their_median_reported():
    assert per_round_ratio([2.0, None, 6.0, 3.0], [1.0, 1.0, 2.0, 0.0]) == [2.0, 3.0]
    assert describe_ratios([2.0, 3.0, 2.5]) == "2.50x (median of 3 rounds, 2.00-3.00)"
    assert describe_ratios([1.25]) == "1.25x (1 round)" and describe_ratios([]) == "-"
    # A machine twice as slow in round 1 leaves the ratio alone; the best runs of each row would not.
    torch_row = _row("torch", "fp32", {0: 5.0, 1: 2.5, 2: 5.0})
    int8_row = _row("onnxruntime", "int8", {0: 15.0, 1: 7.5, 2: 16.0})
    ratio = round_ratio(int8_row, torch_row)
    assert ratio == {"median": 3.0, "min": 3.0, "max": 3.2, "rounds": 3}
    assert round_ratio(int8_row, {**torch_row, "fps_by_round": {5: 1.0}}) is None
    runs = [
        {"p50_ms": 100.0, "fps": 10.0, "round": 0},
        {"p50_ms": 90.0, "fps": 11.0, "round": 1},
        {"error": "x", "round": 2},
    ]
    assert best_run(runs)["fps_by_round"] == {0: 10.0, 1: 11.0}


def test_int8_verdicts_name_the_target_at_640x192_only():
    rows = []
    for network in ("640x192", "1024x320"):
        rows += [
            _row("torch", "fp32", {0: 5.0, 1: 4.0}, network),
            _row("onnxruntime", "fp32", {0: 7.5, 1: 6.0}, network),
            _row("onnxruntime", "int8", {0: 15.0, 1: 9.0}, network),
        ]
    lines = verdicts(rows)
    assert (
        "- 640x192: ONNX Runtime int8 runs 2.62x (median of 2 rounds, 2.25-3.00) the throughput of eager "
        "PyTorch (target >= 2.5x: met)." in lines
    )
    assert (
        "- 1024x320: ONNX Runtime int8 runs 2.62x (median of 2 rounds, 2.25-3.00) the throughput of eager "
        "PyTorch." in lines
    )
    assert any("640x192: ONNX Runtime int8 runs 1.75x (median of 2 rounds" in line for line in lines)
    assert any("ONNX Runtime runs 1.50x (median of 2 rounds, 1.50-1.50)" in line for line in lines)
    slow = [r if r["precision"] != "int8" else _row("onnxruntime", "int8", {0: 10.0, 1: 8.0}) for r in rows]
    assert any(line.endswith("(target >= 2.5x: NOT met).") for line in verdicts(slow[:3]))


# ------------------------------------------------------------------------------------- fresh processes


def child_echo(spec):
    """A measurement for the test below: what the child process saw."""
    import os

    if spec.get("fail"):
        raise RuntimeError("the child failed on purpose")
    return {"threads": os.environ.get("OMP_NUM_THREADS"), "value": spec["value"] * 2}


@pytest.mark.slow
def test_run_isolated_runs_a_function_in_a_fresh_process_with_the_thread_count():
    here = Path(__file__).parent
    assert run_isolated("test_perf_benches", "child_echo", {"value": 21, "threads": 3}, here) == {
        "threads": "3",
        "value": 42,
    }
    failed = run_isolated("test_perf_benches", "child_echo", {"value": 1, "fail": True}, here)
    assert failed == {"error": "RuntimeError: the child failed on purpose"}


def test_median_seconds_runs_warmup_then_timed_calls():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), iterations=4, warmup=2)
    assert len(calls) == 6 and seconds >= 0


# ----------------------------------------------------------------------------------------- the ceiling


def test_flop_count_scales_with_the_pixels_and_is_all_convolution():
    small, large = ceiling.count_flops(128, 64), ceiling.count_flops(256, 128)
    assert large["total"] == pytest.approx(4 * small["total"], rel=0.02)
    assert small["conv"] == pytest.approx(small["total"], rel=0.01)
    # ResNet-18 alone is 1.8 GMAC at 224x224: its share at 128x64 is a sixth of that, doubled for FLOPs.
    assert 0.5e9 < small["total"] < 3e9


def test_ceiling_fractions_are_taken_against_the_rounds_peak_of_the_data_type():
    flops = {"640x192": {"total": 10e9, "conv": 10e9}}
    rounds = [
        {
            "gemm_ops": 2e9,
            "gemms": {"torch.mm": 0.02, "numpy.matmul": 0.04, "onnxruntime MatMulInteger (u8 x s8)": 0.005},
            "backends": {"640x192": {"PyTorch eager float32": 1.0, "ONNX Runtime int8": 0.25}},
        },
        {  # a round twice as slow: the fractions stay
            "gemm_ops": 2e9,
            "gemms": {"torch.mm": 0.04, "onnxruntime MatMulInteger (u8 x s8)": 0.01},
            "backends": {"640x192": {"PyTorch eager float32": 2.0, "ONNX Runtime int8": 0.5}},
        },
    ]
    result = ceiling.fractions(rounds, flops)
    torch_row = result[("640x192", "PyTorch eager float32")]
    assert torch_row["fraction"] == pytest.approx(0.1) and torch_row["rounds"] == 2  # 10 of 100 GFLOP/s
    assert result[("640x192", "ONNX Runtime int8")]["fraction"] == pytest.approx(0.1)  # 40 of 400
    assert ("640x192", "ONNX Runtime float32") not in result
    args = argparse.Namespace(gemm_size=2048, iterations=10, warmup=3)
    text = ceiling.section("cmd", args, 2, [{**r, "errors": {}} for r in rounds], flops, 60.0, (1.0, 2.0))
    assert "| 640x192 | 10.00 (100 %) | PyTorch eager float32 | 1500.0 | 7.5 | 75 (float32) | 10 % |" in text
    assert "| 640x192 | 10.00 | ONNX Runtime float32 | failed | | | |" in text
    assert "| torch.mm | float32 | 100, 50 | 75 |" in text


# -------------------------------------------------------------------------------------------- runtimes


def test_openvino_decision_compares_the_fastest_of_each_runtime_round_by_round():
    seconds = {
        "ONNX Runtime, float32 model": [0.20, 0.40],
        "ONNX Runtime, int8 model (uint8 activations)": [0.10, 0.20],
        "ONNX Runtime, int8 model with int8 activations": [0.01, 0.01],  # not what the backend runs
        "OpenVINO, float32 model, f32": [0.15, 0.30],
        "OpenVINO, int8 model (uint8 activations)": [0.09, 0.18],
    }
    line = runtimes.decide("640x192", seconds)
    assert "runs 1.11x (median of 2 rounds, 1.11-1.11)" in line and "below the 1.3x bar, no OpenVINO" in line
    seconds["OpenVINO, float32 model, default precision"] = [0.05, 0.1]
    assert "at least the 1.3x bar" in runtimes.decide("640x192", seconds)
    assert "no decision" in runtimes.decide("640x192", {"ONNX Runtime, float32 model": [0.1]})


def test_runtimes_section_lists_failures_and_ratios():
    ok = {"seconds": 0.1}
    rounds = {"640x192": {name: [ok, ok] for name, *_ in runtimes.ROWS}}
    rounds["640x192"]["OpenVINO, float32 model, f32"] = [{"error": "ModuleNotFoundError: openvino"}] * 2
    args = argparse.Namespace(rounds=2, iterations=10, warmup=3)
    text = runtimes.section("cmd", args, 2, rounds, 30.0, (None, None))
    assert "| 640x192 | OpenVINO, float32 model, f32 | failed: ModuleNotFoundError: openvino | | | |" in text
    assert "OpenVINO, float32 model, f32 runs - the throughput of ONNX Runtime, float32 model." in text
    assert "below the 1.3x bar, no OpenVINO backend" in text and runtimes.TAKEN not in text
    rounds["640x192"]["OpenVINO, float32 model, f32"] = [{"seconds": 0.05}] * 2
    faster = runtimes.section("cmd", args, 2, rounds, 30.0, (None, None))
    assert "at least the 1.3x bar" in faster and faster.rstrip().endswith(runtimes.TAKEN)


# ------------------------------------------------------------------------------------------- teachers


@pytest.mark.slow
def test_teacher_cost_child_times_sgbm_and_the_cache_hit_path(tmp_path):
    spec = {"method": "sgbm", "width": 256, "height": 96, "pairs": 1, "threads": 1}
    computed = teacher_cost.child(spec)
    hit = teacher_cost.child({**spec, "cache_dir": str(tmp_path / "cache")})
    assert computed["seconds"] > 0 and 0.3 < computed["valid"] < 1.0
    assert hit["valid"] == pytest.approx(computed["valid"])  # the cached output is the computed one
    assert hit["hits"] == 4  # the timed pair: two directions, both hit (filling them missed)
    args = argparse.Namespace(rounds=1, pairs=1, size="256x96")
    runs = {"SGBM": [computed], "teacher cache hit (SGBM entries)": [hit]}
    text = teacher_cost.section("cmd", args, 1, runs, 10.0, (None, None))
    assert "| SGBM |" in text and "| teacher cache hit (SGBM entries) |" in text and "(1 round) |" in text


@pytest.mark.slow
def test_teacher_cost_child_times_the_dense_dis_teacher():
    dis = teacher_cost.child({"method": "dis", "width": 256, "height": 96, "pairs": 1, "threads": 1})
    assert dis["seconds"] > 0 and 0.3 < dis["valid"] <= 1.0  # dense: a flow kept at most pixels
    assert "dis" in {method for _, method, _ in teacher_cost.ROWS}


# --------------------------------------------------------------------------------------- quantization


def test_quantization_section_states_the_relative_abs_rel_cost_against_float32():
    metrics = {"abs_rel": 0.2, "sq_rel": 1.0, "rmse": 5.0, "rmse_log": 0.3, "a1": 0.7, "a2": 0.8, "a3": 0.9}
    results = {
        "PyTorch checkpoint": {**metrics, "frames": 40},
        "ONNX float32": {**metrics, "frames": 40},
        "ONNX int8, 32 calibration frames": {
            **metrics,
            "abs_rel": 0.203,
            "calibration": "calibrating int8 quantisation on 32 of 120 frames of the world",
        },
        "ONNX int8, 8 calibration frames": {
            **metrics,
            "abs_rel": 0.205,
            "calibration": "calibrating int8 quantisation on 8 of 120 frames of the world",
        },
    }
    cfg = quantization.load_config(quantization.ablation.BASE_CONFIG)
    text = quantization.section("cmd", cfg, results, None, 60.0)
    assert "abs_rel 0.2000 -> 0.2030 (+1.50 % relative to float32; target <= +2 %: met)" in text
    assert "abs_rel 0.2000 -> 0.2050 (+2.50 % relative to float32; target <= +2 %: NOT met)" in text
    assert "calibration: 32 of 120 frames of the world" in text
    given = quantization.section("cmd", cfg, results, None, 60.0, "runs/m.pt")
    assert "(model runs/m.pt, given by --checkpoint: its configuration below)" in given


def test_quantization_budget_is_the_ablations_for_one_seed_with_the_fgdepth_preset(tmp_path):
    args = quantization.parse_args(["--seed", "3", "--steps", "7", "--out", str(tmp_path)])
    overrides = quantization.budget(args, tmp_path)
    cfg = quantization.load_config(quantization.ablation.BASE_CONFIG, overrides)
    assert (cfg.loss.preset, cfg.train.max_steps, cfg.train.seed, cfg.data.synth.seed) == ("fgdepth", 7, 3, 3)
    assert cfg.data.path == str(tmp_path / "world")  # the world is rendered in the work folder


def test_backend_predictor_scales_by_the_focal_ratio():
    class Half:
        info = argparse.Namespace(train_focal=100.0)

        def forward(self, batch):
            return batch[:, :1] * 2.0

    sample = {"left": torch.full((3, 4, 5), 0.25), "focal": torch.tensor(150.0)}
    (depth,) = quantization.BackendPredictor(Half()).predict_batch([sample])
    np.testing.assert_allclose(depth, np.full((4, 5), 0.75))


# ---------------------------------------------------------------------------------------------- the GPU


def test_gpu_rows_that_need_cuda_are_skipped_with_the_reason_on_a_cpu():
    cpu = torch.device("cpu")
    assert gpu_inference.skip_reason("fp16", False, cpu) == "fp16 needs CUDA"
    assert gpu_inference.skip_reason("fp32", True, cpu) == "CUDA graphs need CUDA"
    assert gpu_inference.skip_reason("fp32", False, cpu) is None
    assert gpu_inference.skip_reason("fp16", True, torch.device("cuda")) is None
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA tensor"):
        gpu_inference.graph_runner(torch.nn.Identity(), torch.zeros(1))


@pytest.mark.slow
def test_gpu_script_runs_its_logic_on_the_cpu_and_refuses_to_write_cpu_numbers(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--size", "64x64", "--image-size", "96x64", "--iterations", "1"]
    argv += ["--warmup", "0", "--json", str(out)]
    results = tmp_path / "RESULTS.md"
    with pytest.raises(SystemExit, match="not writing CPU numbers"):
        gpu_inference.main([*argv, "--results", str(results)])
    assert not results.exists()
    kept = json.loads(out.read_text())
    assert kept["device"] == "cpu" and kept["gpu"] is None and kept["size"] == [64, 64]
    forward = {r["name"]: r for r in kept["rows"]["forward"]}
    assert forward["forward fp32, eager"]["ms"] > 0
    assert forward["forward fp16, CUDA graph"]["skipped"] == "fp16 needs CUDA"
    steps = [r["name"] for r in kept["rows"]["pipeline"]]
    assert steps == ["preprocess (host)", "copy to device", "forward", "copy to host", "postprocess (host)"]
    end_to_end = {r["name"]: r for r in kept["rows"]["estimator"]}
    assert end_to_end["DepthEstimator.predict, torch backend, fp32"]["p95_ms"] > 0
    text = capsys.readouterr().out
    assert "| forward fp32, CUDA graph | skipped: CUDA graphs need CUDA |" in text
    assert "- Pre/post-processing and copies:" in text and "of the float32 forward pass" in text


def test_the_load_line_says_the_cpu_was_shared_only_when_it_was(monkeypatch):
    monkeypatch.setattr("tools.isolated.os.cpu_count", lambda: 2)
    quiet = load_phrase((0.34, 1.84), "compare within a round")
    assert quiet == "; 1-minute load average 0.34 before, 1.84 after"
    busy = load_phrase((1.5, 5.23), "compare within a round")
    assert busy.startswith("; 1-minute load average 1.50 before, 5.23 after (above the 2 cores")
    assert busy.endswith("compare within a round)")
    assert load_phrase((None, 1.0), "x") == ""
