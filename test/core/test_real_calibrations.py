"""Published stereo calibrations end to end in fg_depth_core: each is read the way a user would give it
(KITTI's calib_cam_to_cam.txt, CameraInfo messages, a stereo folder's calib.yaml), the built-in world is
rendered through it (test/calibration_helpers.py), and the SGBM teacher's pseudo depth, the depth warp and
flip-swap are checked against the exact ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from calibration_helpers import CALIBRATIONS, EUROC_RAW, RigFrame, image_size, render_through, visible_core
from kitti_helpers import write_date, write_frame
from rosbags.typesys import Stores, get_typestore

from fg_depth_core.augment import flip_swap
from fg_depth_core.camera import StereoRig
from fg_depth_core.camera_msgs import stereo_rig_from_infos
from fg_depth_core.config import AugmentConfig, SgbmConfig
from fg_depth_core.data.base import RawPair, StereoDataset
from fg_depth_core.data.folder import StereoFolder
from fg_depth_core.data.kitti import KittiRaw
from fg_depth_core.data.kitti_calib import load_kitti_calib
from fg_depth_core.geometry import depth_warp
from fg_depth_core.losses import pe, pseudo_depth
from fg_depth_core.teachers.dataset import WithTeacher
from fg_depth_core.teachers.sgm import SgbmTeacher

T = get_typestore(Stores.ROS2_HUMBLE).types
SGBM = SgbmConfig(num_disparities=64)
#: Pixels scored: visible in both views, away from depth edges, and at least this much disparity f * B / Z
#: (pixels), where one pixel of matching error is at most 25 % of depth.
MIN_DISPARITY = 4.0
#: SGBM's median relative depth error there, and the share of pixels within 10 % (measured: 2.0-2.5 % and
#: 98.5-99.9 %; one pixel of doffs wrong gives a 10-13 % median).
MEDIAN_REL = 0.04
WITHIN_10 = 0.95


@pytest.fixture(scope="module")
def frames():
    return {name: render_through(calib) for name, calib in CALIBRATIONS.items()}


# ------------------------------------------------------------------------------------------ the rigs


def _kitti_root(root: Path, frame: RigFrame) -> Path:
    """A KITTI raw tree with the published 2011_09_26 calibration (only the lines the loader reads) and one
    frame of ``frame``'s images."""
    calib = CALIBRATIONS["kitti_2011_09_26"]
    lines = [
        "S_rect_02: 1.242000e+03 3.750000e+02",
        "R_rect_00: 1 0 0 0 1 0 0 0 1",
        "P_rect_02: " + " ".join(f"{v:.6e}" for v in calib.p_left.reshape(-1)),
        "P_rect_03: " + " ".join(f"{v:.6e}" for v in calib.p_right.reshape(-1)),
    ]
    date = write_date(root, "2011_09_26", cam="\n".join(lines) + "\n", velo="")
    write_frame(date / "2011_09_26_drive_0001_sync", 0, {2: frame.left, 3: frame.right})
    return root


def _camera_info(p: np.ndarray, width: int, height: int, raw=None):
    """A CameraInfo (rosbags type) with rectified P and, for a raw camera, its K, plumb_bob D and R."""
    k = p[:, :3] if raw is None else raw["k"]
    stamp = T["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="c"), height=height, width=width,
        distortion_model="plumb_bob", d=np.zeros(5) if raw is None else raw["d"], k=k.reshape(-1),
        r=(np.eye(3) if raw is None else raw["r"]).reshape(-1), p=p.reshape(-1), binning_x=0, binning_y=0,
        roi=roi,
    )  # fmt: skip


def _scaled_raw(raw: dict, sx: float, sy: float) -> dict:
    """A raw camera's K for its image resized by (sx, sy) (pixel-centre rule); D and R do not change."""
    s = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return {"k": s @ raw["k"], "d": raw["d"], "r": raw["r"]}


def _middlebury_folder(root: Path, frame: RigFrame) -> Path:
    """A stereo folder with a calib.yaml written from Middlebury's calib.txt (cam0, doffs, baseline in mm),
    converted to the test images' size as a user resizing the scene would."""
    calib = CALIBRATIONS["middlebury_motorcycle"]
    w, h = image_size(calib)
    sx, sy = w / calib.width, h / calib.height
    cam0 = {"fx": 3979.911, "fy": 3979.911, "cx": 1244.772, "cy": 1019.507}
    text = (
        f"fx: {cam0['fx'] * sx!r}\nfy: {cam0['fy'] * sy!r}\ncx: {(cam0['cx'] + 0.5) * sx - 0.5!r}\n"
        f"cy: {(cam0['cy'] + 0.5) * sy - 0.5!r}\nbaseline: {193.001 / 1000}\ndoffs: {124.343 * sx!r}\n"
        f"width: {w}\nheight: {h}\n"
    )
    for sub, image in (("left", frame.left), ("right", frame.right)):
        (root / sub).mkdir(parents=True)
        cv2.imwrite(str(root / sub / "0.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (root / "depth").mkdir()
    np.save(root / "depth" / "0.npy", frame.depth)
    (root / "calib.yaml").write_text(text)
    return root


class _Pair(StereoDataset):
    """One rendered pair with the rig a consumer read for it."""

    def __init__(self, frame: RigFrame, rig: StereoRig) -> None:
        super().__init__(frame.left.shape[1], frame.left.shape[0])
        self.pair = RawPair(frame.left, frame.right, rig, frame.depth)

    def __len__(self) -> int:
        return 1

    def load(self, index: int) -> RawPair:
        return self.pair

    def name(self, index: int) -> str:
        return "0"


def _dataset(name: str, frame: RigFrame, tmp_path: Path) -> StereoDataset:
    """The pair as its consumer serves it: KittiRaw, a StereoFolder, or the rig of two CameraInfos."""
    w, h = frame.left.shape[1], frame.left.shape[0]
    if name == "kitti_2011_09_26":
        return KittiRaw(_kitti_root(tmp_path / "kitti", frame), width=w, height=h, load_depth=False)
    if name == "middlebury_motorcycle":
        return StereoFolder(_middlebury_folder(tmp_path / "middlebury", frame), w, h)
    raw = {"left": None, "right": None}
    if name == "euroc_v1":
        calib = CALIBRATIONS[name]
        raw = {side: _scaled_raw(EUROC_RAW[side], w / calib.width, h / calib.height) for side in raw}
    infos = [_camera_info(p, w, h, raw[s]) for p, s in ((frame.p_left, "left"), (frame.p_right, "right"))]
    return _Pair(frame, stereo_rig_from_infos(*infos, "/stereo"))


def test_kitti_calibration_file_gives_the_published_rig_and_notes_its_residuals(frames, tmp_path):
    root = _kitti_root(tmp_path, frames["kitti_2011_09_26"])
    rig = load_kitti_calib(root / "2011_09_26").rig()
    # B = (Tx_2 - Tx_3) / fx with Tx_2 = 44.85728 != 0; one K for both views: no disparity offset.
    assert rig.baseline == pytest.approx((44.85728 + 339.5242) / 721.5377, rel=1e-9)
    assert rig.doffs == 0.0 and rig.intrinsics.cx == pytest.approx(609.5593)
    # P_rect_02/03 differ in P[1,3] (0.216 vs 2.200) and P[2,3]: the right camera sits 2.75 mm higher and
    # 0.016 mm further forward than the left, both accepted and reported.
    assert len(rig.notes) == 2
    assert rig.notes[0].startswith("vertical offset ty = -2.753 mm")
    assert "0.517 % of the 0.5327 m baseline" in rig.notes[0]
    assert rig.notes[1].startswith("depth offset tz = +0.01598 mm")


@pytest.mark.parametrize(
    "name, baseline, doffs",
    [
        ("kitti_2011_09_26", (44.85728 + 339.5242) / 721.5377, 0.0),
        ("euroc_v1", 48.0208307332968 / 436.24429564709413, 0.0),
        ("middlebury_motorcycle", 0.193001, 124.343),
        ("zed2_hd720", 0.12, 0.0),
    ],
)
def test_each_consumer_reads_the_published_rig(name, baseline, doffs, frames, tmp_path):
    calib, frame = CALIBRATIONS[name], frames[name]
    native = StereoRig.from_projections(calib.p_left, calib.p_right, calib.width, calib.height)
    assert native.baseline == pytest.approx(baseline, rel=1e-9)
    assert native.doffs == pytest.approx(doffs, abs=1e-9)
    assert native.right_intrinsics.cx == pytest.approx(calib.p_right[0, 2], abs=1e-9)
    # At the test size, through its consumer: the same rig as the scaled P, the offset scaled with the width.
    rig = _dataset(name, frame, tmp_path).load(0).rig
    w, h = frame.left.shape[1], frame.left.shape[0]
    expected = native.resized(w, h)
    assert rig.baseline == pytest.approx(expected.baseline, rel=1e-9)
    assert rig.doffs == pytest.approx(expected.doffs, abs=1e-6) and rig.doffs == pytest.approx(
        doffs * w / calib.width, abs=1e-6
    )
    k, e = rig.intrinsics, expected.intrinsics
    assert (k.width, k.height) == (w, h)
    np.testing.assert_allclose([k.fx, k.fy, k.cx, k.cy], [e.fx, e.fy, e.cx, e.cy], rtol=1e-6)


# ------------------------------------------------------------------------------------------ the teacher


def _depth_errors(depth: np.ndarray, ok: np.ndarray, frame: RigFrame, truth: np.ndarray) -> dict:
    """Relative errors of ``depth`` (H,W) where valid (``ok``) on the scored pixels of ``frame``."""
    rig = frame.rig
    with np.errstate(divide="ignore", invalid="ignore"):
        scored = visible_core(frame) & (rig.intrinsics.fx * rig.baseline / truth >= MIN_DISPARITY)
    used = scored & ok
    rel = np.abs(depth[used] - truth[used]) / truth[used]
    return {
        "coverage": used.sum() / max(scored.sum(), 1),
        "median": float(np.median(rel)) if rel.size else np.inf,
        "within_10": float((rel < 0.1).mean()) if rel.size else 0.0,
    }


@pytest.mark.parametrize("name", list(CALIBRATIONS))
def test_sgbm_pseudo_depth_of_a_training_sample_matches_the_ground_truth(name, frames, tmp_path):
    frame = frames[name]
    data = WithTeacher(_dataset(name, frame, tmp_path), SgbmTeacher(SGBM))
    sample = data[0]
    assert float(sample["doffs"]) == pytest.approx(frame.rig.doffs, abs=1e-5)
    flow, valid = sample["flow_lr"][None], sample["valid_lr"][None]
    depth, ok = pseudo_depth(flow, sample["focal"], sample["baseline"], sample["doffs"])
    ok = (ok & valid)[0, 0].numpy()
    stats = _depth_errors(depth[0, 0].numpy(), ok, frame, frame.depth)
    assert stats["coverage"] > 0.7 and stats["median"] < MEDIAN_REL and stats["within_10"] > WITHIN_10, stats
    # The depth warp with the true depth and the rig's offset rebuilds the left view from the right one.
    truth = torch.from_numpy(np.where(np.isfinite(frame.depth), frame.depth, 1e4))[None, None]
    rig = (sample["focal"], sample["baseline"], sample["doffs"])
    recon, inside = depth_warp(sample["right"][None], truth, *rig)
    error = pe(sample["left"][None], recon, 0.85)[0, 0].numpy()
    core = visible_core(frame) & inside[0, 0].numpy()
    assert np.median(error[core]) < 0.02, np.median(error[core])
    if frame.rig.doffs:
        # Negative control: the same teacher output read without the offset is not the scene's depth.
        wrong, wrong_ok = pseudo_depth(flow, sample["focal"], sample["baseline"])
        bad = _depth_errors(wrong[0, 0].numpy(), (wrong_ok & valid)[0, 0].numpy(), frame, frame.depth)
        assert bad["coverage"] < 0.05 or bad["median"] > 0.2, bad
        recon, _ = depth_warp(sample["right"][None], truth, sample["focal"], sample["baseline"])
        assert np.median(pe(sample["left"][None], recon, 0.85)[0, 0].numpy()[core]) > 0.05


def test_kitti_right_target_is_served_mirrored_with_the_flip_swapped_rig(frames, tmp_path):
    frame = frames["kitti_2011_09_26"]
    root = _kitti_root(tmp_path / "kitti", frame)
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 0 r\n")
    w, h = frame.left.shape[1], frame.left.shape[0]
    data = KittiRaw(root, split, width=w, height=h, load_depth=False)
    pair = data.load(0)
    assert np.array_equal(pair.left, frame.right[:, ::-1])
    assert pair.rig == load_kitti_calib(root / "2011_09_26").rig(w, h).flip_swapped()
    sample = WithTeacher(data, SgbmTeacher(SGBM))[0]
    depth, ok = pseudo_depth(sample["flow_lr"][None], sample["focal"], sample["baseline"], sample["doffs"])
    ok = (ok & sample["valid_lr"][None])[0, 0].numpy()
    # The right camera's own depth, mirrored; scored where the mirrored right pixel is seen by the left view.
    truth = frame.depth_right[:, ::-1]
    mirrored = RigFrame(
        pair.left, pair.right, truth, _mirror_disparity(frame), frame.depth[:, ::-1], frame.p_left,
        frame.p_right, pair.rig, frame.world_scale,
    )  # fmt: skip
    stats = _depth_errors(depth[0, 0].numpy(), ok, mirrored, truth)
    assert stats["coverage"] > 0.7 and stats["median"] < MEDIAN_REL and stats["within_10"] > WITHIN_10, stats


def _mirror_disparity(frame: RigFrame) -> np.ndarray:
    """Image disparity of the mirrored, swapped pair: for an ideal rig f * B / Z_right - doffs, mirrored."""
    rig = frame.rig
    with np.errstate(divide="ignore"):
        d = rig.intrinsics.fx * rig.baseline / frame.depth_right - rig.doffs
    return np.where(np.isfinite(frame.depth_right), d, -rig.doffs)[:, ::-1].astype(np.float32)


# ------------------------------------------------------------------------------------------ flip-swap


def test_flip_swap_of_a_pair_with_a_disparity_offset_stays_a_rig_with_that_offset(frames, tmp_path):
    frame = frames["middlebury_motorcycle"]
    sample = StereoFolder(_middlebury_folder(tmp_path, frame), frame.left.shape[1], frame.left.shape[0])[0]
    truth_right = torch.from_numpy(np.where(np.isfinite(frame.depth_right), frame.depth_right, 1e4))
    batch = {key: sample[key][None] for key in ("left", "right", "K", "focal", "baseline", "doffs")}
    batch["depth_left"] = sample["depth_left"][None]
    batch["depth_right"] = truth_right[None, None]
    out = flip_swap(batch, AugmentConfig(flip_prob=1.0), torch.Generator().manual_seed(0))
    rig = frame.rig.flip_swapped()
    # The new left view is the mirrored right one: its cx is W - 1 - cx_r, and the offset stays.
    assert float(out["K"][0, 0, 2]) == pytest.approx(rig.intrinsics.cx, abs=1e-4)
    assert float(out["K"][0, 0, 2]) == pytest.approx(frame.left.shape[1] - 1 - frame.p_right[0, 2], abs=1e-4)
    assert float(out["doffs"][0]) == pytest.approx(frame.rig.doffs, abs=1e-5)
    # ...and with that offset the depth warp rebuilds the flipped target from the flipped source (scored
    # where the target sees something and its match lies in the source; occlusions are few).
    recon, inside = depth_warp(out["right"], out["depth_left"], out["focal"], out["baseline"], out["doffs"])
    error = pe(out["left"], recon, 0.85)[0, 0].numpy()
    core = np.isfinite(frame.depth_right[:, ::-1]) & inside[0, 0].numpy()
    assert np.median(error[core]) < 0.02
    # Mirroring the offset's sign (or forgetting it) would not.
    recon, _ = depth_warp(out["right"], out["depth_left"], out["focal"], out["baseline"], -out["doffs"])
    assert np.median(pe(out["left"], recon, 0.85)[0, 0].numpy()[core]) > 0.05


# ------------------------------------------------------------------------------------------ bags


def _extracted_depth_errors(out: Path, frame: RigFrame) -> dict:
    """SGBM pseudo depth of the first extracted pair against the rendered truth, in the extracted crop."""
    h, w = frame.depth.shape
    data = StereoFolder(out, w, h)
    pair = data.load(0)
    k = pair.rig.intrinsics
    # The crop shifts the principal point: its offset recovers the crop window.
    x0 = int(round(frame.p_left[0, 2] - k.cx))
    y0 = int(round(frame.p_left[1, 2] - k.cy))
    ch, cw = pair.left.shape[:2]
    window = (slice(y0, y0 + ch), slice(x0, x0 + cw))
    cropped = RigFrame(
        pair.left, pair.right, frame.depth[window], frame.disparity[window], frame.depth_right[window],
        frame.p_left, frame.p_right, pair.rig, frame.world_scale,
    )  # fmt: skip
    sample = WithTeacher(StereoFolder(out, cw, ch), SgbmTeacher(SGBM))[0]
    depth, ok = pseudo_depth(sample["flow_lr"][None], sample["focal"], sample["baseline"], sample["doffs"])
    ok = (ok & sample["valid_lr"][None])[0, 0].numpy()
    return _depth_errors(depth[0, 0].numpy(), ok, cropped, cropped.depth)


@pytest.mark.parametrize("name", ["euroc_v1", "middlebury_motorcycle", "kitti_2011_09_26"])
def test_a_bag_with_a_published_calibration_trains_on_true_geometry(name, frames, tmp_path, capsys):
    from bag_helpers import BagSpec, RawCamera, write_stereo_bag

    from fg_depth_core.cli import main as cli_main
    from fg_depth_core.config import BagConfig
    from fg_depth_core.data.bag import extract_bag

    calib, frame = CALIBRATIONS[name], frames[name]
    h, w = frame.depth.shape
    if name == "euroc_v1":
        # The recorded images are EuRoC's raw ones: its K, plumb_bob D and rectifying R, here at 320 px.
        raw = {side: _scaled_raw(EUROC_RAW[side], w / calib.width, h / calib.height) for side in EUROC_RAW}
        spec = BagSpec(
            frames=2, p_override={"left": frame.p_left, "right": frame.p_right},
            cameras={side: RawCamera(c["k"], c["d"], c["r"]) for side, c in raw.items()},
        )  # fmt: skip
    else:
        spec = BagSpec(frames=2, distort=False, p_override={"left": frame.p_left, "right": frame.p_right})
    bag = write_stereo_bag(tmp_path / "bag", [frame, frame], spec)
    said = []
    topics = {"left": "/stereo/left/image_raw", "right": "/stereo/right/image_raw"}
    cfg = BagConfig(left_topic=topics["left"], right_topic=topics["right"])
    out = extract_bag(bag, cfg, tmp_path / "x", log=said.append)
    stats = _extracted_depth_errors(out, frame)
    assert stats["coverage"] > 0.6 and stats["median"] < MEDIAN_REL and stats["within_10"] > WITHIN_10, stats
    rig = StereoFolder(out, w, h).load(0).rig if name != "euroc_v1" else None
    if rig is not None:  # used as recorded: the rig of the two P, its offset in calib.yaml
        assert rig.doffs == pytest.approx(frame.rig.doffs, abs=1e-6)
        assert rig.baseline == pytest.approx(frame.rig.baseline, rel=1e-9)
    accepted = [line for line in said if line.startswith("calibration residual accepted: ")]
    assert len(accepted) == len(frame.rig.notes)
    assert cli_main(["bag-info", str(bag), "--left", topics["left"], "--right", topics["right"]]) == 0
    text = capsys.readouterr().out
    assert f"disparity offset cx_r - cx_l: {frame.rig.doffs:.3f} px" in text
    assert text.count("calibration residual accepted: ") == len(frame.rig.notes)


def test_the_training_loss_at_the_true_depth_is_low_only_with_the_offset(frames, tmp_path):
    from fg_depth_core.config import LossConfig
    from fg_depth_core.losses import total_loss

    frame = frames["middlebury_motorcycle"]
    h, w = frame.depth.shape
    sample = WithTeacher(StereoFolder(_middlebury_folder(tmp_path, frame), w, h), SgbmTeacher(SGBM))[0]
    truth = torch.from_numpy(np.where(np.isfinite(frame.depth), frame.depth, 1e4))[None, None]
    args = [sample[k][None] for k in ("left", "right", "flow_lr", "valid_lr")]
    args += [sample["focal"][None], sample["baseline"][None], LossConfig()]
    _, right = total_loss([truth], *args, sample["doffs"][None])
    _, wrong = total_loss([truth], *args)
    # With the offset the teacher's pseudo depth covers the scene (M_fp, which also masks L_ph) and agrees
    # with the truth better than with a 20 % error (L_dr), and the truth warps the right view onto the left
    # (L_ph); without the offset the teacher's disparities mean no depth, and M_fp is all but empty.
    assert right["mask_prior"].float().mean() > 0.5 > 0.05 > wrong["mask_prior"].float().mean()
    _, off = total_loss([truth * 1.2], *args, sample["doffs"][None])
    assert float(right["dr"]) < 0.8 * float(off["dr"])
    assert float(right["photometric"]) < 0.05
