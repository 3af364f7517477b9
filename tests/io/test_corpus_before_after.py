"""scripts/corpus_before_after.py: how a run's exit status, output and marker are judged."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import corpus_before_after as ba  # noqa: E402  (scripts/ is not a package)

REFUSED = {"code": 2, "stderr": "inspector: error: x.pt: damaged\n"}


def test_outcomes() -> None:
    assert ba.outcome(REFUSED) == "refused"
    assert ba.outcome({"code": 0, "stderr": ""}) == "accepted"
    assert ba.outcome({"code": 0, "stderr": "warning\nmore\n"}) == "accepted"  # noisy only
    assert ba.outcome({"signal": "SIGSEGV", "stderr": ""}) == "crash"
    assert ba.outcome({"code": 1, "stderr": "inspector: internal error: TypeError\n"}) == "crash"
    assert ba.outcome({"code": 2, "stderr": "Traceback (most recent call last):\n"}) == "crash"
    assert ba.outcome({"hang": True}) == "hang"
    assert ba.outcome({"code": 0, "stderr": "", "marker": True}) == "code ran"
    assert ba.outcome({**REFUSED, "pwned": True}) == "code ran"


def test_verdicts_follow_the_manifest() -> None:
    damaged = {"file": "x.pt", "expect": "damaged"}
    reads = {"file": "y.pt", "expect": "reads"}
    no_compress = {"file": "z.pt", "expect": "reads", "compress": "is complex64"}
    assert ba.verdict(damaged, "info", "accepted") == "silent acceptance"
    assert ba.verdict(damaged, "info", "refused") == "ok"
    assert ba.verdict(reads, "compress", "refused") == "wrong refusal"
    assert ba.verdict(no_compress, "info", "accepted") == "ok"
    assert ba.verdict(no_compress, "compress", "accepted") == "silent acceptance"
    assert ba.verdict(reads, "info", "hang") == "hang"


def test_every_corpus_entry_is_a_case() -> None:
    cases = ba.cases(ROOT / "tests" / "corpus")
    assert len(cases) == len({c["file"] for c in cases}) >= 146
    assert {c["manifest"] for c in cases} >= {"manifest.json", "manifest_dcz.json"}
