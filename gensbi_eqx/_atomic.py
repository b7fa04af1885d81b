"""Writing files so that readers see the old file or the new one, never half of one."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for binary writing; on success it is flushed to
    disk and renamed over ``path``, on any error it is removed and ``path`` is untouched.

    The temporary file lives in the same directory so the rename stays on one filesystem.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"`path`: the directory {str(path.parent)!r} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); outputs should be as readable as any file.
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
