"""Stereo training pairs from a rosbag2 recording (sqlite3 or MCAP), read with the ``rosbags`` library.

No ROS installation is needed. The walk from a bag to a dataset:

1. :func:`read_stamps` reads the header stamps of the two image topics; :func:`pair_stamps` pairs left and
   right images whose stamps differ by at most ``slop`` (mutual nearest neighbours, one to one), and
   :func:`select_pairs` applies the time window, stride and frame cap of ``data.bag``.
2. The first CameraInfo of each camera gives a :class:`~fg_depth_core.rectify.StereoRectifier`: raw, distorted
   images are rectified from D, K, R, P and cropped to the area both views fill; the rig (baseline, disparity
   offset, notes on accepted calibration residuals) comes from the two P (fg_depth_core.camera.StereoRig).
3. :func:`extract_bag` decodes (sensor_msgs/Image or CompressedImage), rectifies and writes the selected pairs
   into a stereo folder (fg_depth_core.data.folder) with train.txt / val.txt split files and a manifest.
   The folder is a cache: a second run with the same bag and settings reuses it, an interrupted one
   continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.camera_msgs import NS_PER_S, ConversionError, compressed_to_rgb, image_to_rgb, stamp_ns
from fg_depth_core.config import MIN_INPUT_SIZE, BagConfig
from fg_depth_core.data.base import DatasetError, RawPair

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
#: Files a cached extraction holds besides the stereo folder.
MANIFEST = "bag.json"
TRAIN_LIST, VAL_LIST = "train.txt", "val.txt"
#: image_transport sub-topics that carry an image topic in another encoding.
TRANSPORT_SUFFIXES = ("compressed", "theora", "zstd", "ffmpeg")
#: Bumped when the cache's content changes meaning, so older caches are rebuilt.
CACHE_VERSION = 1
NS = NS_PER_S

PathLike = Union[str, os.PathLike]


class BagError(DatasetError):
    """A bag, topic or message cannot be used for training; the message names the bag and the topic."""


# ------------------------------------------------------------------------------------------ opening


def open_bag(path: PathLike) -> Any:
    """An opened ``rosbags.highlevel.AnyReader`` of a rosbag2 folder (metadata.yaml + storage files) or a
    single .mcap / .db3 file. Close it with ``reader.close()`` (or use :func:`bag_reader`)."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: bag not found (expected a rosbag2 folder or a .mcap / .db3 file)")
    # Bags without embedded definitions (sqlite3 from older distros) use the standard message types.
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    try:
        reader.open()
    except (AnyReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(f"{path}: cannot read as a rosbag2 recording (sqlite3 or MCAP): {exc}") from None
    return reader


def bag_reader(path: PathLike) -> "contextlib.closing[Any]":
    """``with bag_reader(path) as reader:`` -- :func:`open_bag`, closed at the end of the block."""
    return contextlib.closing(open_bag(path))


@dataclass
class TopicStats:
    """One topic of a bag: its type, message count and mean rate (Hz) over the recording."""

    name: str
    msgtype: str
    count: int
    rate_hz: float


def topic_stats(reader: Any) -> Dict[str, TopicStats]:
    """Every topic of the bag by name, from the bag's index (no message is read): the rate is
    (count - 1) / bag duration, exact for a topic that spans the recording."""
    counts: Dict[str, int] = {}
    types: Dict[str, str] = {}
    for con in reader.connections:
        counts[con.topic] = counts.get(con.topic, 0) + con.msgcount
        types.setdefault(con.topic, con.msgtype)
    seconds = reader.duration / NS if reader.message_count > 1 else 0.0
    return {
        name: TopicStats(name, types[name], n, (n - 1) / seconds if seconds > 0 and n > 1 else 0.0)
        for name, n in counts.items()
    }


def default_info_topic(image_topic: str) -> str:
    """The CameraInfo topic image_transport pairs with ``image_topic``: the sibling ``camera_info``
    (/cam0/image_raw -> /cam0/camera_info; a transport suffix such as /compressed is dropped first)."""
    parts = image_topic.rstrip("/").split("/")
    if parts and parts[-1] in TRANSPORT_SUFFIXES:
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])


def _connections(reader: Any, topic: str, types: Sequence[str], role: str, bag: PathLike) -> List[Any]:
    cons = [c for c in reader.connections if c.topic == topic]
    if not cons:
        have = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
        raise BagError(
            f"{bag}: no topic {topic!r} for the {role}; the bag has: {', '.join(have) or 'nothing'}"
        )
    bad = [c.msgtype for c in cons if c.msgtype not in types]
    if bad:
        raise BagError(f"{bag}: topic {topic!r} ({role}) is {bad[0]}, expected {' or '.join(types)}")
    return cons


# ------------------------------------------------------------------------------------------ stamps


#: CDR encapsulation ids (the payload's first 2 bytes) of little- and big-endian data.
CDR_LITTLE_ENDIAN, CDR_BIG_ENDIAN = b"\x00\x01", b"\x00\x00"


def header_stamp_ns(raw: bytes) -> Optional[int]:
    """The header stamp (ns) of a CDR-serialised message that starts with std_msgs/Header (Image,
    CompressedImage, CameraInfo), read from its first bytes without deserialising the rest: after the 4-byte
    encapsulation come int32 sec and uint32 nanosec. None for another encoding."""
    head = bytes(raw[:12])
    if len(head) < 12 or head[:2] not in (CDR_LITTLE_ENDIAN, CDR_BIG_ENDIAN):
        return None
    order = "little" if head[:2] == CDR_LITTLE_ENDIAN else "big"
    sec = int.from_bytes(head[4:8], order, signed=True)
    return sec * NS + int.from_bytes(head[8:12], order, signed=False)


def read_stamps(reader: Any, topics: Dict[str, str], bag: PathLike) -> Dict[str, np.ndarray]:
    """{role: (N,) int64 header stamps (ns) of that role's image topic, in recording order}, in one pass
    over the bag. ``topics`` maps a role (e.g. "left images") to its topic."""
    cons = {role: _connections(reader, topic, IMAGE_TYPES, role, bag) for role, topic in topics.items()}
    role_of = {id(c): role for role, group in cons.items() for c in group}
    stamps: Dict[str, List[int]] = {role: [] for role in topics}
    for con, _, raw in reader.messages([c for group in cons.values() for c in group]):
        ns = header_stamp_ns(raw)
        if ns is None:
            ns = stamp_ns(reader.deserialize(raw, con.msgtype))
        stamps[role_of[id(con)]].append(ns)
    for role, values in stamps.items():
        if not values:
            raise BagError(f"{bag}: topic {topics[role]!r} ({role}) has no messages")
    return {role: np.asarray(values, dtype=np.int64) for role, values in stamps.items()}


def pair_stamps(left_ns: np.ndarray, right_ns: np.ndarray, slop_ns: int) -> np.ndarray:
    """(P,2) int indices (left, right) of stamp pairs: mutual nearest neighbours at most ``slop_ns`` apart,
    in left order. An image without a partner (dropped frame) is left out, never paired twice."""
    left_ns, right_ns = np.asarray(left_ns, dtype=np.int64), np.asarray(right_ns, dtype=np.int64)
    if left_ns.size == 0 or right_ns.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    r_order, l_order = np.argsort(right_ns, kind="stable"), np.argsort(left_ns, kind="stable")

    def nearest(stamps: np.ndarray, sorted_idx: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Index into ``stamps`` of the stamp nearest each query (ties to the earlier one)."""
        ordered = stamps[sorted_idx]
        pos = np.searchsorted(ordered, query)
        before, after = np.clip(pos - 1, 0, len(ordered) - 1), np.clip(pos, 0, len(ordered) - 1)
        earlier = np.abs(ordered[before] - query) <= np.abs(ordered[after] - query)
        return sorted_idx[np.where(earlier, before, after)]

    right_of_left = nearest(right_ns, r_order, left_ns)
    left_of_right = nearest(left_ns, l_order, right_ns)
    left_idx = np.arange(left_ns.size)
    mutual = left_of_right[right_of_left] == left_idx
    close = np.abs(left_ns - right_ns[right_of_left]) <= slop_ns
    keep = mutual & close
    return np.stack([left_idx[keep], right_of_left[keep]], axis=1).astype(np.int64)


def select_pairs(pairs: np.ndarray, left_ns: np.ndarray, cfg: BagConfig) -> np.ndarray:
    """The rows of ``pairs`` that cfg's window (start, duration: seconds from the first pair), stride and
    max_frames select, in time order."""
    if len(pairs) == 0:
        return pairs
    stamps = left_ns[pairs[:, 0]]
    order = np.argsort(stamps, kind="stable")
    pairs, stamps = pairs[order], stamps[order]
    t = (stamps - stamps[0]) / NS
    inside = t >= cfg.start
    if cfg.duration > 0:
        inside &= t <= cfg.start + cfg.duration
    chosen = pairs[inside][:: cfg.stride]
    return chosen[: cfg.max_frames] if cfg.max_frames > 0 else chosen


@dataclass
class SyncStats:
    """How the two image topics pair up: counts and |left - right| stamp offsets (ms) of the pairs."""

    left: int
    right: int
    pairs: int
    median_offset_ms: float
    max_offset_ms: float


def sync_stats(left_ns: np.ndarray, right_ns: np.ndarray, slop: float) -> Tuple[np.ndarray, SyncStats]:
    """Pairs of :func:`pair_stamps` for a slop in seconds, and their statistics."""
    pairs = pair_stamps(left_ns, right_ns, int(round(slop * NS)))
    offsets = np.abs(left_ns[pairs[:, 0]] - right_ns[pairs[:, 1]]) / 1e6 if len(pairs) else np.zeros(0)
    median = float(np.median(offsets)) if offsets.size else math.nan
    worst = float(offsets.max()) if offsets.size else math.nan
    return pairs, SyncStats(len(left_ns), len(right_ns), len(pairs), median, worst)


# ------------------------------------------------------------------------------------------ messages


def read_camera_infos(reader: Any, topic: str, role: str, bag: PathLike) -> Tuple[Any, int]:
    """(first CameraInfo message of ``topic``, number of distinct calibrations seen on it)."""
    cons = _connections(reader, topic, (INFO_TYPE,), role, bag)
    first, seen = None, set()
    for con, _, raw in reader.messages(cons):
        msg = reader.deserialize(raw, con.msgtype)
        key = tuple(np.concatenate([np.ravel(m) for m in (msg.k, msg.d, msg.r, msg.p)]).tolist())
        if first is None:
            first = msg
        seen.add(key)
    if first is None:
        raise BagError(f"{bag}: topic {topic!r} ({role}) has no messages")
    return first, len(seen)


def decode_image(msg: Any, msgtype: str, what: str) -> np.ndarray:
    """(H,W,3) uint8 RGB of an Image or CompressedImage message."""
    if msgtype == COMPRESSED_TYPE:
        return compressed_to_rgb(msg, what)
    return image_to_rgb(msg, what)  # may view msg.data: the rectifier and writer only read it


# ------------------------------------------------------------------------------------------ the stream


@dataclass
class BagStereo:
    """What training needs from a bag, before any image is decoded: the topics, the rectifier (from the
    CameraInfos) and the selected (left, right) message indices with their left stamps (ns)."""

    bag: Path
    cfg: BagConfig
    left_info_topic: str
    right_info_topic: str
    rectifier: Any
    sync: SyncStats
    selected: np.ndarray
    stamps: np.ndarray
    calibration_changes: int


def open_stereo(reader: Any, bag: PathLike, cfg: BagConfig) -> BagStereo:
    """Check the topics, pair the stamps, select pairs and build the rectifier for ``cfg`` on an open bag.

    Raises BagError for a missing or mistyped topic, no pairs within the slop, or camera infos that do not
    describe a stereo pair (their own error, prefixed with the bag and topics)."""
    from fg_depth_core.rectify import StereoRectifier

    cfg.require_topics("data.bag")
    left_info = cfg.left_info_topic or default_info_topic(cfg.left_topic)
    right_info = cfg.right_info_topic or default_info_topic(cfg.right_topic)
    stamps = read_stamps(reader, {"left images": cfg.left_topic, "right images": cfg.right_topic}, bag)
    left_ns, right_ns = stamps["left images"], stamps["right images"]
    pairs, stats = sync_stats(left_ns, right_ns, cfg.slop)
    if stats.pairs == 0:
        raise BagError(
            f"{bag}: no left/right images of {cfg.left_topic} and {cfg.right_topic} have header stamps "
            f"within data.bag.slop = {cfg.slop} s; check the topics, or raise the slop (fg-depth bag-info "
            "shows the offsets)"
        )
    selected = select_pairs(pairs, left_ns, cfg)
    if len(selected) == 0:
        raise BagError(
            f"{bag}: {stats.pairs} pairs sync, but none lies in the window start={cfg.start} s, "
            f"duration={cfg.duration} s (data.bag)"
        )
    left_msg, left_changes = read_camera_infos(reader, left_info, "left camera info", bag)
    right_msg, right_changes = read_camera_infos(reader, right_info, "right camera info", bag)
    try:
        rectifier = StereoRectifier(
            left_msg, right_msg, cfg.rectify, cfg.crop, what=f"{bag}: {left_info} + {right_info}"
        )
    except ConversionError as exc:
        raise BagError(str(exc)) from None
    return BagStereo(
        Path(bag),
        cfg,
        left_info,
        right_info,
        rectifier,
        stats,
        selected,
        left_ns[selected[:, 0]],
        max(left_changes, right_changes) - 1,
    )


def iter_pairs(reader: Any, stereo: BagStereo) -> Iterator[Tuple[int, RawPair]]:
    """(left stamp ns, rectified RawPair) of every selected pair, in recording order. Images wait in memory
    only until their partner arrives (stereo partners are recorded close together)."""
    cfg = stereo.cfg
    want = {"left": {}, "right": {}}
    for row, (li, ri) in enumerate(stereo.selected):
        want["left"][int(li)] = row
        want["right"][int(ri)] = row
    cons = {
        "left": _connections(reader, cfg.left_topic, IMAGE_TYPES, "left images", stereo.bag),
        "right": _connections(reader, cfg.right_topic, IMAGE_TYPES, "right images", stereo.bag),
    }
    side_of = {id(c): side for side, group in cons.items() for c in group}
    topic = {"left": cfg.left_topic, "right": cfg.right_topic}
    counters = {"left": 0, "right": 0}
    waiting: Dict[int, Dict[str, np.ndarray]] = {}
    remaining = len(stereo.selected)
    if remaining == 0:
        return
    for con, _, raw in reader.messages(cons["left"] + cons["right"]):
        side = side_of[id(con)]
        index = counters[side]
        counters[side] += 1
        row = want[side].get(index)
        if row is None:
            continue
        what = f"{stereo.bag}: {topic[side]} message {index}"
        try:
            image = decode_image(reader.deserialize(raw, con.msgtype), con.msgtype, what)
        except ConversionError as exc:
            raise BagError(str(exc)) from None
        views = waiting.setdefault(row, {})
        views[side] = image
        if len(views) == 2:
            del waiting[row]
            try:
                left, right = stereo.rectifier(
                    views["left"], views["right"], what=f"{stereo.bag}: pair {row}"
                )
            except ConversionError as exc:
                raise BagError(str(exc)) from None
            yield int(stereo.stamps[row]), RawPair(left, right, stereo.rectifier.rig)
            remaining -= 1
            if remaining == 0:
                return  # the rest of the bag holds no selected image


# ------------------------------------------------------------------------------------------ the cache


def frame_name(stamp_ns: int) -> str:
    """The file stem of the pair whose left image has header stamp ``stamp_ns``: zero-padded, so names sort
    in time order."""
    return f"{stamp_ns:020d}"


def bag_identity(bag: PathLike) -> Dict[str, Any]:
    """What identifies a recording for the cache: its resolved path and its files' sizes."""
    bag = Path(bag).resolve()
    if not bag.exists():
        raise BagError(f"{bag}: bag not found (expected a rosbag2 folder or a .mcap / .db3 file)")
    files = sorted(p for p in bag.rglob("*") if p.is_file()) if bag.is_dir() else [bag]
    return {"path": str(bag), "files": {p.name: p.stat().st_size for p in files}}


def _cache_key(bag: PathLike, cfg: BagConfig) -> Dict[str, Any]:
    settings = dataclasses.asdict(cfg)
    settings.pop("val_fraction")  # only the split files depend on it
    return {"version": CACHE_VERSION, "bag": bag_identity(bag), "settings": settings}


def split_names(names: Sequence[str], val_fraction: float) -> Tuple[List[str], List[str]]:
    """(train, val): the last ceil(val_fraction * N) names (time order) validate (at least one). Raises
    BagError when no training pair would be left."""
    n_val = max(1, math.ceil(val_fraction * len(names)))
    if len(names) - n_val < 1:
        raise BagError(
            f"only {len(names)} pair(s) selected: not enough for training plus {n_val} for validation "
            "(select more pairs, or lower data.bag.val_fraction)"
        )
    return list(names[: len(names) - n_val]), list(names[len(names) - n_val :])


def extract_bag(
    bag: PathLike, cfg: BagConfig, out: PathLike, progress: bool = False, log: Any = None
) -> Path:
    """Decode, rectify and write the pairs ``cfg`` selects from ``bag`` into the stereo folder ``out`` (with
    train.txt, val.txt and bag.json); returns ``out``.

    A folder whose manifest matches this bag and these settings is reused as it is (only the split files
    are rewritten); one that does not match is emptied and rebuilt; an interrupted extraction continues
    (pairs are written atomically; the manifest says complete only at the end). ``log`` receives progress
    lines (default: none).
    """
    from tqdm import tqdm

    from fg_depth_core.atomic_io import atomic_write_bytes
    from fg_depth_core.data.folder import pair_complete, write_stereo_folder

    say = log or (lambda _text: None)
    out = Path(out)
    key = _cache_key(bag, cfg)
    manifest_path = out / MANIFEST
    manifest = _read_manifest(manifest_path)
    same = manifest is not None and manifest.get("key") == key
    if same and manifest.get("complete"):
        names = list(manifest["frames"])
        say(f"bag frames: reusing {len(names)} rectified pairs in {out}")
    else:
        if not same and (manifest is not None or (out / "left").exists()):
            say(f"bag frames: {out} holds another extraction; rebuilding it")
            for sub in ("left", "right", "depth"):
                shutil.rmtree(out / sub, ignore_errors=True)
            for stale in (manifest_path, out / "calib.yaml"):
                stale.unlink(missing_ok=True)
        elif same:
            say(f"bag frames: continuing the interrupted extraction in {out}")
        out.mkdir(parents=True, exist_ok=True)
        # Written first with complete=False, so that an interrupted run is recognised and continued.
        _write_manifest(manifest_path, {"key": key, "complete": False})
        with bag_reader(bag) as reader:
            stereo = open_stereo(reader, bag, cfg)
            say(
                f"bag frames: {len(stereo.selected)} of {stereo.sync.pairs} synced pairs selected; "
                f"{stereo.rectifier.describe()}"
            )
            for note in stereo.rectifier.rig.notes:
                say(f"calibration residual accepted: {note}")
            if stereo.calibration_changes:
                say(f"warning: the camera infos change {stereo.calibration_changes} time(s); using the first")
            names = [frame_name(int(s)) for s in stereo.stamps]
            # Pairs an interrupted run wrote stay; only the others are decoded and rectified.
            missing = np.array([not pair_complete(out, name) for name in names], dtype=bool)
            todo = dataclasses.replace(
                stereo, selected=stereo.selected[missing], stamps=stereo.stamps[missing]
            )
            pairs = ((frame_name(stamp), pair) for stamp, pair in iter_pairs(reader, todo))
            total = int(missing.sum())
            bar = tqdm(pairs, total=total, desc="rectify bag", unit="pair", disable=not progress)
            write_stereo_folder(out, bar, calib=stereo.rectifier.rig)
            _write_manifest(
                manifest_path,
                {
                    "key": key,
                    "complete": True,
                    "frames": names,
                    "topics": [
                        cfg.left_topic,
                        cfg.right_topic,
                        stereo.left_info_topic,
                        stereo.right_info_topic,
                    ],
                    "rectification": stereo.rectifier.describe(),
                    "sync": dataclasses.asdict(stereo.sync),
                },
            )
    train, val = split_names(names, cfg.val_fraction)
    for file, subset in ((TRAIN_LIST, train), (VAL_LIST, val)):
        atomic_write_bytes(out / file, "".join(f"{n}\n" for n in subset).encode(), fsync=False)
    return out


def _write_manifest(path: Path, data: Dict[str, Any]) -> None:
    from fg_depth_core.atomic_io import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=1).encode(), fsync=False)


def _read_manifest(path: Path) -> Optional[Dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------------------ helpers for users

#: Name pairs that mark a left and a right camera topic, tried in order.
STEREO_NAME_PAIRS = (("left", "right"), ("cam0", "cam1"), ("infra1", "infra2"), ("l", "r"))


def guess_stereo_topics(stats: Dict[str, TopicStats]) -> Optional[Tuple[str, str]]:
    """(left, right) image topics of a bag when its names make them clear: the only two image topics, or
    two topics that differ only in a left/right marker (STEREO_NAME_PAIRS). None when ambiguous."""
    images = sorted(name for name, s in stats.items() if s.msgtype in IMAGE_TYPES)
    for left_mark, right_mark in STEREO_NAME_PAIRS:
        for topic in images:
            parts = topic.split("/")
            for i, part in enumerate(parts):
                if part == left_mark or left_mark in part.split("_"):
                    other = "/".join(parts[:i] + [part.replace(left_mark, right_mark)] + parts[i + 1 :])
                    if other in images:
                        return topic, other
    if len(images) == 2:
        return images[0], images[1]
    return None


def suggest_input_size(width: int, height: int, net_width: int, multiple: int) -> Tuple[int, int]:
    """A network input (net_width, H) with H a multiple of ``multiple`` closest to the image's aspect."""
    net_height = max(MIN_INPUT_SIZE, int(round(net_width * height / width / multiple)) * multiple)
    return net_width, net_height
