"""The stereo-folder dataset: rectified pairs as image files plus one calibration file.

Layout (NAME is any file stem; names starting with "." are ignored)::

    DIR/calib.yaml        fx, fy, cx, cy (pixels, the left view), baseline (metres, right camera at +x)
                          [, doffs: the disparity offset cx_r - cx_l in pixels (default 0), as in
                          Middlebury 2014's calib.txt: depth = fx * baseline / (disparity + doffs)]
                          [, width, height: the image size those intrinsics belong to]
    DIR/left/NAME.png     left views (.png, .jpg, .jpeg, .bmp, .ppm, .tif, .tiff)
    DIR/right/NAME.png    right views, same stem and size as the left one
    DIR/depth/NAME.npy    optional left-view depth: (H,W) float32 metres, 0 / NaN / inf = unknown;
    DIR/depth/NAME.png    or a 16-bit PNG holding round(depth * 256) like KITTI's, 0 = unknown.
                          When depth/ exists, every pair needs its depth file; its size may differ from
                          the images' (it is the ground truth's own resolution).
    DIR/<anything>.txt    optional split files: one NAME per line ("#" comments and blank lines ignored)

:func:`write_stereo_folder` writes this layout (.npy depth, PNG images); every file is written to a temporary
name and renamed, and the left image last, so a pair whose left image exists is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.atomic_io import atomic_write_bytes
from fg_depth_core.camera import CameraError, Intrinsics, StereoRig
from fg_depth_core.data.base import DatasetError, RawPair, StereoDataset
from fg_depth_core.image_io import read_stereo_pair

CALIB_FILE = "calib.yaml"
CALIB_KEYS = ("fx", "fy", "cx", "cy", "baseline")
#: Optional calib.yaml key: the disparity offset cx_r - cx_l (pixels), 0 when absent.
DOFFS_KEY = "doffs"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
#: 16-bit PNG depth holds round(depth * DEPTH_PNG_SCALE) (KITTI's convention); 0 = unknown.
DEPTH_PNG_SCALE = 256.0

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------- calibration


def read_calib(path: PathLike) -> Tuple[StereoRig, Optional[Tuple[int, int]]]:
    """(rig, (width, height) or None) from a calib.yaml.

    Without width/height the rig's intrinsics are given a placeholder size of 1x1: call :func:`calib_rig`
    with the image size to get the rig of the images.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: calibration file not found (expected keys {', '.join(CALIB_KEYS)})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with keys {', '.join(CALIB_KEYS)}, got {data!r}")
    values: Dict[str, float] = {}
    for key in CALIB_KEYS:
        if key not in data:
            raise DatasetError(f"{path}: missing key '{key}' (expected {', '.join(CALIB_KEYS)})")
        values[key] = _number(path, key, data[key])
    if values["baseline"] <= 0 or not np.isfinite(values["baseline"]):
        raise DatasetError(
            f"{path}: key 'baseline': expected metres > 0 (right camera at +x), got {data['baseline']}"
        )
    size = None
    if ("width" in data) != ("height" in data):
        raise DatasetError(f"{path}: give both 'width' and 'height' or neither")
    if "width" in data:
        w, h = _number(path, "width", data["width"]), _number(path, "height", data["height"])
        if w < 1 or h < 1 or w != int(w) or h != int(h):
            raise DatasetError(f"{path}: keys 'width'/'height': expected positive integers, got {w} x {h}")
        size = (int(w), int(h))
    doffs = _number(path, DOFFS_KEY, data[DOFFS_KEY]) if DOFFS_KEY in data else 0.0
    try:
        k = Intrinsics(values["fx"], values["fy"], values["cx"], values["cy"], *(size or (1, 1)))
        rig = StereoRig(k, values["baseline"], doffs)
    except CameraError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    return rig, size


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{path}: key '{key}': expected a number, got {value!r}")
    return float(value)


def calib_rig(rig: StereoRig, width: int, height: int) -> StereoRig:
    """The rig of a calib.yaml (:func:`read_calib`) for images of ``width`` x ``height``."""
    k = rig.intrinsics
    return StereoRig(Intrinsics(k.fx, k.fy, k.cx, k.cy, int(width), int(height)), rig.baseline, rig.doffs)


def write_calib(root: PathLike, rig: StereoRig) -> Path:
    """Write ``root``/calib.yaml for ``rig`` (with its image size). An existing file must describe the same
    rig, else DatasetError: a folder holds one camera."""
    import yaml

    path = Path(root) / CALIB_FILE
    k = rig.intrinsics
    data = {
        "fx": k.fx,
        "fy": k.fy,
        "cx": k.cx,
        "cy": k.cy,
        "baseline": rig.baseline,
        DOFFS_KEY: rig.doffs,
        "width": k.width,
        "height": k.height,
    }
    if path.is_file():
        old_rig, old_size = read_calib(path)
        old = calib_rig(old_rig, *(old_size or (k.width, k.height)))
        if not _same_rig(old, rig):
            raise DatasetError(
                f"{path}: already describes another camera ({_describe(old)}), not {_describe(rig)}; "
                "write into an empty folder"
            )
        return path
    text = (
        "# Rectified stereo calibration: left intrinsics (pixels), baseline (metres, right camera at +x),\n"
        "# doffs = cx_right - cx_left (pixels): depth = fx * baseline / (disparity + doffs).\n"
    )
    atomic_write(path, (text + yaml.safe_dump(data, sort_keys=False)).encode())
    return path


def _same_rig(a: StereoRig, b: StereoRig) -> bool:
    ka, kb = a.intrinsics, b.intrinsics
    return (ka.width, ka.height) == (kb.width, kb.height) and bool(
        np.allclose(
            [ka.fx, ka.fy, ka.cx, ka.cy, a.baseline, a.doffs],
            [kb.fx, kb.fy, kb.cx, kb.cy, b.baseline, b.doffs],
            rtol=1e-9,
            atol=1e-9,
        )
    )


def _describe(rig: StereoRig) -> str:
    k = rig.intrinsics
    return (
        f"{k.width}x{k.height}, fx={k.fx:g}, fy={k.fy:g}, cx={k.cx:g}, cy={k.cy:g}, B={rig.baseline:g} m, "
        f"doffs={rig.doffs:g} px"
    )


# ----------------------------------------------------------------------------------------------- reading


def _stems(folder: Path) -> Dict[str, Path]:
    """Image files of ``folder`` by stem (hidden and non-image files skipped)."""
    out: Dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        if p.stem in out:
            raise DatasetError(f"{p}: two images named {p.stem!r} ({out[p.stem].name} and {p.name})")
        out[p.stem] = p
    return out


def read_names(split_file: PathLike) -> List[str]:
    """Names listed in a split file (one per line; blank lines and "#" comments skipped)."""
    path = Path(split_file)
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(line)
    if not names:
        raise DatasetError(f"{path}: split file lists no names")
    return names


def read_depth(path: PathLike) -> np.ndarray:
    """A depth file as (H,W) float32 metres, 0 where unknown (.npy float metres or 16-bit PNG * 256)."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: not a readable .npy depth map ({exc})") from None
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
            raise DatasetError(f"{path}: expected an (H,W) array of metres, got {depth.dtype} {depth.shape}")
        depth = depth.astype(np.float32)
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        got = "unreadable" if raw is None else f"{raw.dtype} {raw.shape}"
        raise DatasetError(f"{path}: expected a single-channel 16-bit PNG (depth * 256), got {got}")
    return (raw.astype(np.float32) / DEPTH_PNG_SCALE).astype(np.float32)


class StereoFolder(StereoDataset):
    """Pairs of a stereo folder (module docstring), resized to ``width`` x ``height`` by the base class.

    ``split_file`` (a path, or a file name inside ``root``) or ``names`` picks and orders the pairs; by
    default every left image with a stem is used, sorted by name. Raises DatasetError naming the file for
    a missing calib.yaml or key, a non-positive baseline, a left image without its right partner (or depth
    file, when depth/ exists), an empty folder or a split file naming an unknown pair.
    """

    def __init__(
        self,
        root: PathLike,
        width: int,
        height: int,
        split_file: Optional[PathLike] = None,
        names: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__(width, height)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: stereo folder not found")
        self.calib_path = self.root / CALIB_FILE
        self._rig, self.calib_size = read_calib(self.calib_path)
        self.baseline = self._rig.baseline
        lefts = _stems(self.root / "left")
        if not lefts:
            raise DatasetError(
                f"{self.root / 'left'}: no images (expected left/NAME.png with right/NAME.png and calib.yaml)"
            )
        rights = _stems(self.root / "right")
        depth_dir = self.root / "depth"
        self.has_depth = depth_dir.is_dir()
        depths: Dict[str, Path] = {}
        if self.has_depth:
            for p in sorted(depth_dir.iterdir()):
                if not p.name.startswith(".") and p.suffix.lower() in (".npy", ".png") and p.is_file():
                    depths.setdefault(p.stem, p)
        source = None
        if names is not None:
            wanted = list(names)
        elif split_file is not None:
            source = Path(split_file)
            if not source.is_file() and (self.root / source).is_file():
                source = self.root / source
            wanted = read_names(source)
        else:
            wanted = sorted(lefts)
        self.names: List[str] = []
        self._files: List[Tuple[Path, Path, Optional[Path]]] = []
        for name in wanted:
            stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
            if stem not in lefts:
                where = f"{source}: " if source else ""
                raise DatasetError(f"{where}no left image named {stem!r} in {self.root / 'left'}")
            if stem not in rights:
                raise DatasetError(
                    f"{lefts[stem]}: no right partner (expected {self.root / 'right' / lefts[stem].name})"
                )
            depth = depths.get(stem)
            if self.has_depth and depth is None:
                raise DatasetError(f"{lefts[stem]}: no depth file (expected {depth_dir / stem}.npy or .png)")
            self.names.append(stem)
            self._files.append((lefts[stem], rights[stem], depth))
        if not self.names:
            raise DatasetError(f"{self.root}: no pairs selected")

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]

    def rig(self, width: int, height: int) -> StereoRig:
        """The rig for images of ``width`` x ``height`` (the calibration's own size when it names one)."""
        if self.calib_size is not None and self.calib_size != (width, height):
            raise DatasetError(
                f"{self.calib_path}: calibrated for {self.calib_size[0]}x{self.calib_size[1]} images, "
                f"got {width}x{height}"
            )
        return calib_rig(self._rig, width, height)

    def load(self, index: int) -> RawPair:
        left_path, right_path, depth_path = self._files[index]
        left, right = read_stereo_pair(left_path, right_path)
        h, w = left.shape[:2]
        try:
            rig = self.rig(w, h)
        except DatasetError as exc:
            raise DatasetError(f"{left_path}: {exc}") from None
        depth = read_depth(depth_path) if depth_path is not None else None
        return RawPair(left, right, rig, depth)


# ----------------------------------------------------------------------------------------------- writing


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; no fsync: rendered data can be rendered again."""
    atomic_write_bytes(path, data, fsync=False)


def _png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DatasetError(f"cannot encode a {rgb.shape} {rgb.dtype} image as PNG")
    return buf.tobytes()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32))
    return buf.getvalue()


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or Path(name).name != name:
        raise DatasetError(f"pair name: expected a plain file stem (no '/', no leading '.'), got {name!r}")


def pair_paths(root: PathLike, name: str) -> Dict[str, Path]:
    """Where :func:`write_pair` puts pair ``name``: keys "left", "right", "depth"."""
    root = Path(root)
    return {
        "left": root / "left" / f"{name}.png",
        "right": root / "right" / f"{name}.png",
        "depth": root / "depth" / f"{name}.npy",
    }


def pair_complete(root: PathLike, name: str) -> bool:
    """True when pair ``name`` was written completely (its left image, written last, exists)."""
    return pair_paths(root, name)["left"].is_file()


def write_pair(root: PathLike, name: str, pair: RawPair) -> None:
    """Write one pair (PNG views, .npy depth when present); the left image last, each file atomically."""
    _check_name(name)
    if pair.left.shape != pair.right.shape or pair.left.ndim != 3 or pair.left.dtype != np.uint8:
        raise DatasetError(
            f"pair {name!r}: expected two (H,W,3) uint8 views of one size, got {pair.left.shape} "
            f"{pair.left.dtype} and {pair.right.shape} {pair.right.dtype}"
        )
    paths = pair_paths(root, name)
    if pair.depth_left is not None:
        atomic_write(paths["depth"], _npy_bytes(pair.depth_left))
    atomic_write(paths["right"], _png_bytes(pair.right))
    atomic_write(paths["left"], _png_bytes(pair.left))


def write_stereo_folder(
    root: PathLike,
    pairs: Iterable[Tuple[str, RawPair]],
    calib: Optional[StereoRig] = None,
    progress: bool = False,
    total: Optional[int] = None,
) -> int:
    """Write (name, RawPair) items into the stereo-folder layout at ``root``; returns the number written.

    ``calib`` is the rig at the images' size (default: the first pair's); every pair must share it, since a
    folder has one calib.yaml. Either all pairs or none must carry depth.
    """
    from tqdm import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    count = 0
    with_depth: Optional[bool] = None
    for name, pair in tqdm(pairs, total=total, desc=f"write {root.name}", unit="pair", disable=not progress):
        if calib is None:
            calib = pair.rig
        if count == 0:
            write_calib(root, calib)
        if not _same_rig(pair.rig, calib):
            raise DatasetError(
                f"pair {name!r}: its camera ({_describe(pair.rig)}) differs from the folder's calibration "
                f"({_describe(calib)})"
            )
        has = pair.depth_left is not None
        if with_depth is not None and has != with_depth:
            raise DatasetError(f"pair {name!r}: either every pair has depth or none has")
        with_depth = has
        write_pair(root, name, pair)
        count += 1
    return count
