"""Teachers: pretrained dense correspondence on rectified stereo pairs (docs/METHOD.md, "Teachers").

``build_teacher(cfg.teacher, device)`` gives the configured teacher, wrapped in the on-disk cache when
``cfg.teacher.cache_dir`` is set. Heavy back-ends (torchvision RAFT) are imported only when built.
"""

from __future__ import annotations

from typing import Any

from fg_depth_core.config import TeacherConfig
from fg_depth_core.teachers.base import (
    Teacher,
    TeacherError,
    TeacherOutput,
    disparity_output,
    stereo_flows,
    teacher_disparity,
)
from fg_depth_core.teachers.cache import CachedTeacher

__all__ = [
    "CachedTeacher",
    "Teacher",
    "TeacherError",
    "TeacherOutput",
    "build_teacher",
    "disparity_output",
    "stereo_flows",
    "teacher_disparity",
]


def build_teacher(cfg: TeacherConfig, device: Any = "cpu", use_cache: bool = True) -> Teacher:
    """The teacher named by ``cfg.method`` ("sgbm", "dis", "raft_small", "raft_large") on ``device``.

    With ``use_cache`` and a non-empty ``cfg.cache_dir`` it is wrapped in a :class:`CachedTeacher`.
    Raises TeacherError for unusable weights (never downloads).
    """
    if cfg.method == "sgbm":
        from fg_depth_core.teachers.sgm import SgbmTeacher

        teacher: Teacher = SgbmTeacher(cfg.sgbm)
    elif cfg.method == "dis":
        from fg_depth_core.teachers.dis import DisTeacher

        teacher = DisTeacher(cfg.dis)
    elif cfg.method in ("raft_small", "raft_large"):
        from fg_depth_core.teachers.raft import RaftTeacher

        teacher = RaftTeacher(cfg.method, cfg.weights, cfg.raft, device)
    else:
        raise TeacherError(
            f"teacher.method: expected 'sgbm', 'dis', 'raft_small' or 'raft_large', got {cfg.method!r}"
        )
    if use_cache and cfg.cache_dir:
        teacher = CachedTeacher(teacher, cfg.cache_dir)
    return teacher
