"""Golden ``uniform`` records: bytes written by this version keep decoding to the same values.

Each case is (method, what it covers, params hex, payload hex, the first 16 hex digits of the
SHA-256 of the decoded float32 bytes) for a 4 x 6 layer. A change of the step grid, the
reconstruction formula, the exponent packing or the ``fixed`` stream fails here.
"""

from __future__ import annotations

import hashlib

import pytest

from inspector.core.stages import registry

SHAPE = (4, 6)
GOLDEN = [
    ("uniform", "tensor", "00010bd7233c", "0722344870a0c283020000000000000000a205d0ae7a",
     "58f366b201995a0f"),
    ("uniform", "channel", "01012c1ded3907", "98d4078004d97531d7310000048e2468ae",
     "57b37c7cade81563"),
    ("int4", "channel", "01012c1ded3907", "98d4078004d97531d7310000048e2468ae",
     "57b37c7cade81563"),
    ("uniform", "group", "020111680f390804", "7053580d00238f9c04975395951191002a4a246a8a",
     "0bf040393691575b"),
    ("uniform", "mean", "05013bf8783a0703fdeb06", "98d4078003b5926b200002982536",
     "d06fbf5b4b2ff634"),
]


@pytest.mark.parametrize(("name", "what", "params", "payload", "digest"), GOLDEN,
                         ids=[f"{g[0]}-{g[1]}" for g in GOLDEN])
def test_golden_records_decode_unchanged(name: str, what: str, params: str, payload: str,
                                         digest: str) -> None:
    method = registry.method(name)
    p, data = bytes.fromhex(params), bytes.fromhex(payload)
    method.check(p, len(data), SHAPE)
    for decode in (method.decode, method.decode_reference):
        out = decode(p, data, SHAPE)
        assert hashlib.sha256(out.tobytes()).hexdigest()[:16] == digest
    assert method.describe(p)["granularity"] == ("channel" if what == "mean" else what)
