"""Tell fixed constants from learned weights by their values, cheaply.

A detector's 16-value projection (``arange(16)`` as a 1x1 conv), an audio model's STFT basis
(rows of windowed cos/sin) or a 0/1 mask are shaped like weights, so names and graphs call them
conv or fc; pruning or clustering them breaks the model. Learned weights are never integers,
never evenly spaced, never a handful of values and never pure sinusoids, so each test below
rejects a real weight after looking at a small sample; only a tensor that passes on the sample
is checked in full (in bounded chunks), so a 10M-weight layer costs well under a millisecond.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

MAX_DISTINCT = 16  # at most this many distinct values ...
MIN_FEW_SIZE = 64  # ... in a tensor of at least this many elements is a constant
# Integer-valued or evenly spaced, with at least 3 distinct values, from this size on (a
# detector's arange(16) projection is 16 values; smaller tensors are not worth compressing).
MIN_EXACT_SIZE = 16
_SAMPLE = 4096
_CHUNK = 1 << 20
# DFT basis test: rows sampled, the longest row looked at, the energy share near the peak.
_DFT_ROWS, _DFT_MIN_ROWS, _DFT_MIN_LEN, _DFT_MAX_LEN = 32, 8, 16, 8192
_DFT_SHARE = 0.98


def constant_reason(arr: np.ndarray) -> str | None:
    """Why ``arr`` looks like a fixed constant rather than a learned weight, or None.

    Parameters
    ----------
    arr : ndarray
        A float tensor (others give None).

    Returns
    -------
    str or None
        E.g. ``"16 distinct values"``, ``"evenly spaced values (arange-like)"``, ``"all values
        are integers"``, ``"rows are sinusoids (a DFT/STFT basis)"``.
    """
    if arr.dtype.kind != "f" or arr.size < MIN_EXACT_SIZE:
        return None
    # a view in memory order: reshape(-1) would copy a Fortran-ordered 10M-weight tensor
    flat = arr.reshape(-1) if arr.flags.c_contiguous else arr.ravel(order="K")
    if _evenly_spaced(flat):
        return "evenly spaced values (arange-like)"
    if _integers(flat):
        return "all values are integers"
    if flat.size >= MIN_FEW_SIZE:
        distinct = _distinct(flat, MAX_DISTINCT)
        if distinct is not None:
            return f"{distinct} distinct value{'s' if distinct != 1 else ''}"
    if _dft_basis(arr):
        return "rows are sinusoids (a DFT/STFT basis)"
    return None


def _sample(flat: np.ndarray) -> np.ndarray:
    step = max(1, flat.size // _SAMPLE)
    return flat[::step][:_SAMPLE]


def _chunks(flat: np.ndarray) -> list[np.ndarray]:
    """``flat`` in pieces: a small first one (which rejects any real weight), then big ones."""
    cuts = [0, *range(_SAMPLE, flat.size, _CHUNK), flat.size]
    return [flat[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def _evenly_spaced(flat: np.ndarray) -> bool:
    """``start + step * arange(n)`` with a nonzero step (to float rounding)."""
    first, step = float(flat[0]), float(flat[1]) - float(flat[0])
    if step == 0.0:
        return False
    tol = 1e-6 * max(abs(first), abs(float(flat[-1])), abs(step))
    start = 0
    for part in _chunks(flat):
        ramp = first + step * np.arange(start, start + part.size, dtype=np.float64)
        if not np.all(np.abs(part.astype(np.float64) - ramp) <= tol):
            return False
        start += part.size
    return True


def _integers(flat: np.ndarray) -> bool:
    """Every value a whole number, and at least 3 different ones (fewer: see _distinct)."""
    sample = _sample(flat)
    if not np.array_equal(sample, np.round(sample)):
        return False
    whole = all(np.array_equal(c, np.round(c)) for c in _chunks(flat))
    return whole and _distinct(flat, 2) is None


def _distinct(flat: np.ndarray, limit: int) -> int | None:
    """The number of distinct values if it is at most ``limit``, else None."""
    values = np.unique(_sample(flat))
    if values.size > limit:
        return None
    for chunk in _chunks(flat):  # one pass: look each value up among the few found so far
        at = np.minimum(np.searchsorted(values, chunk), values.size - 1)
        missing = values[at] != chunk
        if missing.any():
            values = np.union1d(values, np.unique(chunk[missing]))
            if values.size > limit:
                return None
    return int(values.size)


def _dft_basis(arr: np.ndarray) -> bool:
    """Rows (along the first axis, or the last of a matrix) are windowed sinusoids of many
    different frequencies: nearly all of each row's energy sits within 2 bins of its peak."""
    if arr.ndim < 2:
        return False
    rows = _picked(arr, arr.shape[0], lambda i: arr[i].reshape(i.size, -1))
    if rows is not None and _sinusoid_rows(rows):
        return True
    if arr.ndim != 2:
        return False
    cols = _picked(arr, arr.shape[1], lambda i: arr[:, i].T)
    return cols is not None and _sinusoid_rows(cols)


def _picked(
    arr: np.ndarray, n: int, take: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """Up to _DFT_ROWS evenly chosen rows (only those are copied), if rows are long enough."""
    length = arr.size // n if n else 0
    if n < _DFT_MIN_ROWS or not _DFT_MIN_LEN <= length <= _DFT_MAX_LEN:
        return None
    return take(np.linspace(0, n - 1, min(n, _DFT_ROWS)).astype(np.intp))


def _sinusoid_rows(picked: np.ndarray) -> bool:
    # Three rows first: a learned kernel fails at once, so a big layer costs three short FFTs.
    if _peaks(picked[[0, picked.shape[0] // 2, -1]]) is None:
        return False
    peaks = _peaks(picked)
    if peaks is None or peaks.size < _DFT_MIN_ROWS:
        return False
    # a bank of filters tuned to many frequencies, not one smooth kernel repeated
    return np.unique(peaks).size >= min(_DFT_MIN_ROWS, peaks.size // 2)


def _peaks(rows: np.ndarray) -> np.ndarray | None:
    """The peak frequency bin of each nonzero row, or None if some row's spectrum does not sit
    almost wholly within 2 bins of its peak."""
    power = np.abs(np.fft.rfft(rows.astype(np.float64), axis=1)) ** 2
    total = power.sum(axis=1)
    live = total > 1e-9 * float(total.max())  # sine rows at 0 and n/2 are (nearly) zero
    power, total = power[live], total[live]
    peak = power.argmax(axis=1)
    near = np.zeros(power.shape[0])
    for offset in range(-2, 3):
        at = peak + offset
        ok = (at >= 0) & (at < power.shape[1])
        near[ok] += power[ok, at[ok]]
    return peak if np.all(near >= _DFT_SHARE * total) else None
