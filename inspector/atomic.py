"""Writing a file so it is either complete or untouched: a temp file beside it, then rename.

Used by every writer (compressed files, model files, settings), outside the layers like
``errors``: nothing is lost if a write fails or is cancelled half-way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    The new file gets the mode of the file it replaces, or the user's default (umask) for a
    new one; on any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        # mkstemp makes 0600 files; an output is an ordinary file like any other
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether writing ``a`` would overwrite ``b`` (through links too, or not written yet)."""
    a, b = Path(a), Path(b)
    # samefile sees through hard links and symlinks; resolve() covers a target not yet written.
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the user's umask (mkstemp gives 0o600)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
