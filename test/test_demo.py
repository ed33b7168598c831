"""`make demo` end to end at a tiny budget: it must produce every file it promises, with sane numbers."""

import json

from fg_depth_core.demo import main


def test_demo_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--steps", "2"]) == 0
    for name in ("scene.png", "loss_curves.png", "loss_curves.json", "depth_fit.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"]["within_1px"] > 0.7
    assert 0.2 < summary["teacher"]["prior_mask_fraction"] <= summary["teacher"]["valid_fraction"]
    curves = json.loads((out / "loss_curves.json").read_text())["pixels"]
    assert [c["kind"] for c in curves] == ["road", "textureless", "nearest object"]
    road = curves[0]
    assert abs(road["argmin"]["fd"] - road["gt_depth"]) < 0.1 * road["gt_depth"]
    assert "Look at" in capsys.readouterr().out
