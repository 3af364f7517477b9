"""Run a reader in a child process, so a native library that crashes or spins on a damaged file
cannot take the app down with it.

HDF5 (under h5py) segfaults on some single-byte corruptions of a valid file and spends seconds
on others; no check in Python can rule that out beforehand. A fresh interpreter reads the file
with the ordinary reader and streams the result back on its stdout: an 8-byte length, a JSON
header, then each array's raw bytes, received straight into arrays allocated here. A crash, a
timeout or a malformed reply becomes one :class:`~inspector.errors.InputError`.

The child is a plain ``python -c`` process rather than a ``multiprocessing`` one, which would
re-import the caller's main script (running an unguarded script twice) and fork from threads.
It costs a quarter of a second per file, mostly importing numpy and h5py.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel

ReadFunc = Callable[[Path], LoadedModel]

#: Seconds a child may take, plus one second per :data:`BYTES_PER_SECOND` of file.
BASE_TIMEOUT = 60.0
BYTES_PER_SECOND = 20 << 20
_MAX_HEADER_BYTES = 64 << 20
_CHILD = "from inspector.io.isolated import serve; serve()"


def read_isolated(
    read: ReadFunc, path: Path, library: str, timeout: float | None = None
) -> LoadedModel:
    """``read(path)`` run in a child process; its :class:`LoadedModel`, rebuilt here.

    Parameters
    ----------
    read : callable
        A module-level reader; the child imports it by module and name.
    path : Path
        The model file.
    library : str
        What might crash, for the message (``"HDF5"``).
    timeout : float, optional
        Seconds before the child is killed; default :data:`BASE_TIMEOUT` plus one second per
        :data:`BYTES_PER_SECOND` of file.

    Raises
    ------
    InputError
        Whatever ``read`` raised, or the child crashed, timed out or replied nonsense.
    """
    if timeout is None:
        timeout = BASE_TIMEOUT + path.stat().st_size / BYTES_PER_SECOND
    # The child must import inspector exactly as this process does (a source checkout, say).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-c", _CHILD, read.__module__, read.__qualname__, str(path)]
    expired = threading.Event()
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env,
    ) as child:  # fmt: skip

        def on_timeout() -> None:
            expired.set()
            child.kill()

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            assert child.stdout is not None
            return _receive(child.stdout, path)
        except (EOFError, ValueError, TypeError, KeyError, MemoryError) as exc:
            child.kill()
            code = child.wait()
            if expired.is_set():
                problem = f"reading took over {timeout:.0f} s and was stopped; damaged file?"
            elif code < 0:
                problem = f"{library} crashed reading it (signal {-code}); damaged file?"
            else:
                problem = f"unreadable: the reader's reply broke off ({_one_line(exc)})"
            raise InputError(problem, path) from None
        finally:
            timer.cancel()
            child.kill()


def _receive(stream: IO[bytes], path: Path) -> LoadedModel:
    length = int.from_bytes(_exactly(stream, 8), "little")
    if length > _MAX_HEADER_BYTES:
        raise ValueError(f"header of {length} bytes")
    header = json.loads(_exactly(stream, length))
    if "problem" in header:
        raise InputError(str(header["problem"]), path)
    tensors: dict[str, np.ndarray] = {}
    for name, dtype, shape in header["tensors"]:
        arr = np.empty(shape, dtype=np.dtype(dtype))
        if arr.dtype.kind not in "biufc":
            raise ValueError(f"unexpected dtype {arr.dtype}")
        _fill(stream, arr.reshape(-1).view(np.uint8))
        tensors[str(name)] = arr
    return LoadedModel.build(
        str(path), str(header["format"]), tensors, header["dtypes"], header["metadata"]
    )


def _exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"{len(data)} of {n} bytes")
    return data


def _fill(stream: IO[bytes], buf: np.ndarray) -> None:
    view, pos = memoryview(buf), 0
    while pos < len(view):
        got = stream.readinto(view[pos:])  # type: ignore[attr-defined]
        if not got:
            raise EOFError(f"{pos} of {len(view)} bytes")
        pos += got


def serve() -> None:
    """Child side: ``python -c ... <module> <function> <path>``; write the reply to stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the reply
    module, name, path = sys.argv[1:4]
    arrays: list[np.ndarray] = []
    header: dict[str, Any]
    try:
        model = getattr(importlib.import_module(module), name)(Path(path))
        arrays = list(model.tensors.values())
        header = {
            "format": model.format,
            "dtypes": model.dtypes,
            "metadata": model.metadata,
            "tensors": [[n, a.dtype.str, list(a.shape)] for n, a in model.tensors.items()],
        }
    except InputError as exc:
        header = {"problem": exc.problem}
    except Exception as exc:  # damage shows up as any exception the library likes
        header = {"problem": f"corrupt or unreadable file ({_one_line(exc)})"}
    raw = json.dumps(header).encode("utf-8")
    out.write(len(raw).to_bytes(8, "little") + raw)
    for arr in arrays:
        out.write(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)
    out.flush()


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
