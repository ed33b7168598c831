"""One entry point from the data config to a dataset: ``build_dataset(cfg.data, split, path, split_file)``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from fg_depth_core.config import DATASETS, ConfigError, DataConfig, EvalConfig
from fg_depth_core.data.base import DatasetError, StereoDataset

#: Roles a dataset is built for; "test" is what evaluation reads.
ROLES = ("train", "val", "test")
PACKAGE_SCHEME = "pkg://"


def resolve_package_path(value: str) -> str:
    """A data-file setting as a filesystem path: ``pkg://<package>/<path>`` names a file inside an installed
    Python package (e.g. ``pkg://fg_depth_core/data/splits/eigen_zhou/train_files.txt``); anything else is
    returned unchanged (relative paths stay relative to the working directory)."""
    if not value.startswith(PACKAGE_SCHEME):
        return value
    import importlib.util

    rest = value[len(PACKAGE_SCHEME) :]
    package, _, inner = rest.partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"{value}: expected pkg://<python package>/<path>, but {package!r} is not a package"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise ConfigError(
            f"{value}: no such file inside package {package} (looked at {path}); put the file there or set "
            "the key to a file path instead"
        )
    return str(path)


def _split_file(cfg: DataConfig, split: str, split_file: Optional[str]) -> Optional[str]:
    """The explicit split file, else the config's for this role ("" means none)."""
    if split_file:
        return resolve_package_path(str(split_file))
    configured = {"train": cfg.train_split, "val": cfg.val_split}.get(split, "")
    return resolve_package_path(configured) if configured else None


def build_dataset(
    data_cfg: DataConfig,
    split: str,
    path: Optional[str] = None,
    split_file: Optional[str] = None,
    work_dir: Optional[str] = None,
    log: Optional[Callable[[str], None]] = None,
    progress: bool = False,
    eval_cfg: Optional[EvalConfig] = None,
) -> StereoDataset:
    """The dataset of ``data_cfg.dataset`` for role ``split`` ("train", "val" or "test").

    path: the dataset root (default data_cfg.path). "synth": the folder the built-in world is rendered into
    (<path>/<split>, rendered on first use); "folder": a stereo folder; "kitti": the KITTI raw root.
    split_file: a file of frame names (default data_cfg.train_split / val_split for those roles). For KITTI
    without one, the shipped default split of the role (Eigen-Zhou train/val, Eigen test). The built-in world
    ignores split files: its splits are seeds. "bag": the rosbag2 recording, whose rectified pairs are
    extracted into ``work_dir`` (a cache, fg_depth_core.data.bag) and split in time (train.txt, val.txt; no
    "test": a bag has no ground truth). Samples come at data_cfg.width x data_cfg.height. ``log`` receives
    status lines, ``progress`` shows a bar while a bag is extracted. ``eval_cfg`` (default: EvalConfig())
    picks KITTI's one ground-truth source and velodyne depth for the roles that load ground truth; the "test"
    role of KITTI reads only each frame's target image (monocular evaluation).
    """
    if split not in ROLES:
        raise DatasetError(f"dataset split: expected one of {list(ROLES)}, got {split!r}")
    kind = data_cfg.dataset
    if kind not in DATASETS:
        raise DatasetError(f"data.dataset: expected one of {list(DATASETS)}, got {kind!r}")
    root = path or data_cfg.path
    if not root:
        what = {
            "synth": "a folder to render the built-in world into",
            "folder": "a stereo folder (left/, right/, calib.yaml)",
            "kitti": "the KITTI raw root (date folders)",
            "bag": "a rosbag2 recording (folder with metadata.yaml, or a .mcap / .db3 file)",
        }[kind]
        raise DatasetError(f"data.path: the {kind!r} dataset needs {what}; set data.path or pass a path")
    chosen = _split_file(data_cfg, split, split_file)
    if kind == "synth":
        from fg_depth_core.data.synth import SynthDataset

        return SynthDataset(data_cfg, split, root)
    if kind == "bag":
        from fg_depth_core.data.bag import TRAIN_LIST, VAL_LIST, extract_bag
        from fg_depth_core.data.folder import StereoFolder

        if split == "test":
            raise DatasetError(
                "the 'bag' dataset has no depth ground truth to evaluate against; evaluate on a dataset with "
                "depth (synth, kitti, or a stereo folder with depth/). To look at predictions on the "
                "bag's frames: fg-depth predict --model RUN_DIR/best.pt "
                "--image RUN_DIR/bag_frames/left/*.png --out DIR"
            )
        if not work_dir:
            raise DatasetError("the 'bag' dataset needs a work directory to extract its rectified pairs into")
        folder = extract_bag(root, data_cfg.bag, work_dir, progress=progress, log=log)
        default = TRAIN_LIST if split == "train" else VAL_LIST
        return StereoFolder(folder, data_cfg.width, data_cfg.height, split_file=chosen or folder / default)
    if kind == "folder":
        from fg_depth_core.data.folder import StereoFolder

        return StereoFolder(root, data_cfg.width, data_cfg.height, split_file=chosen)
    from fg_depth_core.data import kitti

    if chosen is None:
        chosen = getattr(kitti, "DEFAULT_SPLITS", {}).get(split)
    # Training never reads ground truth, and velodyne maps differ in size between recording dates, which a
    # batch could not stack: only evaluation roles load it.
    eval_cfg = eval_cfg if eval_cfg is not None else EvalConfig()
    return kitti.KittiRaw(
        root,
        chosen,
        data_cfg.width,
        data_cfg.height,
        gt=eval_cfg.gt,
        load_depth=split != "train",
        velodyne_depth=eval_cfg.velodyne_depth,
        target_only=split == "test",
    )
