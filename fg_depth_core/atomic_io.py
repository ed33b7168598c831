"""Atomic file writes: a crash or error leaves either the old file or the complete new one, never a part.

The data goes to a temporary file in the target's folder (so the final rename stays on one file system),
optionally fsync'ed, gets the mode an ordinary new file would get (mkstemp makes it 0600, but models and
checkpoints are read by other users, e.g. the ROS node's), and is renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write_with(path: PathLike, write: Callable[[BinaryIO], None], fsync: bool = True) -> None:
    """Create ``path`` (and its folder) atomically from what ``write(f)`` writes to the binary file ``f``.

    fsync: flush to disk before the rename; worth it for checkpoints and models, skipped for bulk data that
    can be regenerated (rendered images).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_with`)."""
    atomic_write_with(path, lambda f: f.write(data), fsync=fsync)
