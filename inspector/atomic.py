"""Writing a file so it is either complete or untouched: a temp file beside it, then rename.

Used by every writer (compressed files, model files, settings), outside the layers like
``errors``: nothing is lost if a write fails or is cancelled half-way.

An output is a regular file or a new name, never a symlink, a folder or a device node
(:func:`check_output`): replacing ``/dev/null`` with a file, or a link with a file, is not what
anyone asked for. Temporary names carry the writer's process id; a temporary left behind by a
process that died (killed, power cut) is removed at the next write into the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from inspector.errors import InputError, OutputError

#: A temporary of ours older than this whose process is gone is removed.
STALE_SECONDS = 600
# .<name>.<pid>-<12 hex>.tmp (atomic_path) or .<stem>.<pid>-<12 hex>.partial<suffix> (exports)
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{12}\.(?:tmp|partial(?:\.[^.]*)?)$")


def temporary_name(path: Path, suffix: str | None = None) -> Path:
    """A fresh hidden name beside ``path`` that :func:`remove_stale` recognises as ours.

    Without ``suffix`` the name ends ``.tmp``; with one it ends ``.partial<suffix>`` (writers
    that choose the format by extension need the real one).
    """
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    if suffix is None:
        return path.with_name(f".{path.name}.{token}.tmp")
    return path.with_name(f".{path.stem}.{token}.partial{suffix}")


def check_output(path: str | Path, protect: Iterable[tuple[str | Path, str]] = ()) -> Path:
    """``path`` as a Path if it may be written: a regular file or a new name in a folder.

    Raises
    ------
    InputError
        A symlink (refused, not followed), a folder, a device node or other special file,
        a missing folder, or the same file as one in ``protect``: pairs of a path and what
        it is (``"the source model"``, ``"the compressed file"``, another output).
    """
    path = Path(path)
    for other, what in protect:
        if same_file(path, other):
            raise InputError(f"refusing to overwrite {what}", path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None
    if mode is not None and stat.S_ISLNK(mode):
        raise InputError("is a symbolic link; inspector writes only regular files (name the "
                         "target itself)", path)  # fmt: skip
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError("is a folder, not a file name", path)
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError("is a device or special file, not a regular file; refusing to "
                         "replace it", path)  # fmt: skip
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path)
    return path


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    ``path`` must pass :func:`check_output`. The new file gets the mode of the file it replaces,
    or the user's default (umask) for a new one; on any exception (a signal turned into one
    included) the temporary file is removed and ``path`` is left as it was. OS failures (a
    full disk, a read-only folder) become one :class:`~inspector.errors.OutputError` line.
    """
    path = check_output(path)
    remove_stale(path.parent)
    tmp = temporary_name(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        # a private temporary is 0600; an output is an ordinary file like any other
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else new_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale(folder: str | Path, now: float | None = None) -> list[Path]:
    """Remove temporaries of ours in ``folder`` whose process is gone and that are older than
    :data:`STALE_SECONDS`; return them. Never raises: cleaning up is a courtesy."""
    removed: list[Path] = []
    now = time.time() if now is None else now
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill(pid, 0) would end it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:  # EPERM: alive, someone else's
        return exc.errno == errno.EPERM
    return True


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether writing ``a`` would overwrite ``b`` (through links too, or not written yet)."""
    a, b = Path(a), Path(b)
    # samefile sees through hard links and symlinks; resolve() covers a target not yet written.
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    with contextlib.suppress(OSError, RuntimeError):
        return a.resolve() == b.resolve()
    return False


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the user's umask (mkstemp gives 0o600)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
