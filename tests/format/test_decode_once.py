"""Opening a ``.dcz`` checks every deep layer up front by decoding its streams; a read after it
builds the values from what the check decoded instead of decoding the streams again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import inspector.core.decode as core_decode
import inspector.core.streams as core_streams
from inspector.core.decode import decode_payload
from inspector.format import container, dtypes
from inspector.format.container import open_container
from inspector.format.layer_values import values_of
from inspector.format.verify import check_deep_payload

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = sorted(GOLDEN.glob("*.dcz")) + sorted((GOLDEN / "v2").glob("*.dcz"))


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Count stream decodes, by the length of the buffer they read (the checker and the
    decoder import ``decode_stream`` differently: patch both names)."""
    calls: Counter[int] = Counter()
    real: Callable[..., Any] = core_streams.decode_stream

    def counted(buf: Any, *args: Any, **kwargs: Any) -> Any:
        calls[len(buf)] += 1
        return real(buf, *args, **kwargs)

    monkeypatch.setattr(core_streams, "decode_stream", counted)
    monkeypatch.setattr(core_decode, "decode_stream", counted)
    return calls


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_open_and_read_decode_each_stream_once(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = open_container(path)
    deep = [i for i, r in enumerate(box.records) if r.deep is not None]
    once = _counting(monkeypatch)
    for i in deep:
        decode_payload(box.payload(i), box.records[i].deep.layout)
    expected = sum(once.values())
    both = _counting(monkeypatch)
    box = open_container(path)
    values = box.read_all()
    assert sum(both.values()) == expected  # the check's decode only: none in the reads
    for i in deep:  # ... and the values are the decoder's, bit for bit
        rec = box.records[i]
        direct = dtypes.cast(decode_payload(box.payload(i), rec.deep.layout), rec.dtype)
        assert values[rec.name].tobytes() == direct.tobytes()


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_values_of_the_checked_symbols_equal_the_decoder(path: Path) -> None:
    box = open_container(path)
    for i, rec in enumerate(box.records):
        if rec.deep is None:
            continue
        payload = box.payload(i)
        got = values_of(check_deep_payload(rec, payload), rec.deep.layout)
        assert np.array_equal(got, decode_payload(payload, rec.deep.layout), equal_nan=True)


def test_a_second_read_decodes_again_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    path = GOLDEN / "v2" / "positions.dcz"
    box = open_container(path)
    first = box.read_all()
    calls = _counting(monkeypatch)
    second = box.read_all()
    assert sum(calls.values()) > 0  # what the check kept went to the first read
    for name, arr in first.items():
        assert arr.tobytes() == second[name].tobytes()


def test_kept_symbols_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past KEEP_NBYTES the check keeps nothing more, and a read decodes its layer itself."""
    path = GOLDEN / "v2" / "positions.dcz"
    expected = open_container(path).read_all()
    monkeypatch.setattr(container, "KEEP_NBYTES", 0)
    calls = _counting(monkeypatch)
    box = open_container(path)
    checked = sum(calls.values())
    got = box.read_all()
    assert sum(calls.values()) == 2 * checked
    assert all(got[n].tobytes() == a.tobytes() for n, a in expected.items())
