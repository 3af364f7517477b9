"""The rate-distortion table of one model: per fidelity level, each codec's smallest bytes.

A column is a codec, or one named point of it (int8, int4, the paper's recipe); a cell is
the smallest ``bytes`` among the column's points that meet the level, as a ratio to float32.
"smallest" names the winner and how much smaller it is than the best of a different codec;
"inspector vs best other" compares our best (Deep Compression or a registered method) with
the best codec that is not ours: above 1x we win, below we lose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rd_codecs import Point
from rd_models import Subject


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    codec: str  # the codec the points come from: columns of one codec never race each other
    ours: bool  # our own code (Deep Compression or a registered method)
    takes: Callable[[Point], bool]


SINGLE = ("int8+zstd", "int4+zstd", "Deep Compression (paper)")  # columns of one point


def columns(points: list[Point]) -> list[Column]:
    cols = [
        Column("NNCodec", "NNCodec", False, lambda p: p.codec == "NNCodec"),
        Column("int8+zstd", "int-N", False, lambda p: p.codec == "int-N+zstd" and
               p.label == "int8"),
        Column("int4+zstd", "int-N", False, lambda p: p.codec == "int-N+zstd" and
               p.label == "int4"),
        Column("int-N+zstd (best N)", "int-N", False, lambda p: p.codec == "int-N+zstd"),
        Column("Deep Compression (paper)", "DC", True, lambda p: p.codec == "Deep Compression"
               and p.label == "paper recipe"),
        Column("Deep Compression (sweep)", "DC", True,
               lambda p: p.codec == "Deep Compression"),
    ]
    for name in sorted({p.codec for p in points if p.codec.startswith("ours: ")}):
        cols.append(Column(name, name, True, lambda p, n=name: p.codec == n))
    return [c for c in cols if any(c.takes(p) for p in points)]


def best(points: list[Point], col: Column, ok: Callable[[Point], bool]) -> Point | None:
    got = [p for p in points if col.takes(p) and ok(p)]
    return min(got, key=lambda p: (p.nbytes, p.label)) if got else None


def level_name(subj: Subject, level: float) -> str:
    return f"drop <= {level:g} pt" if subj.metric == "drop" else f"cosine >= {level:g}"


def markdown(subj: Subject, points: list[Point], times: list[str] | None = None) -> str:
    cols = columns(points)
    fp32 = subj.fp32_nbytes
    params = fp32 // 4
    out = [f"## {subj.name}", "",
           f"{params:,} coded parameters, {fp32:,} B as float32. Fidelity: {subj.what}.", ""]
    head = ["level", *(c.name for c in cols), "smallest", "inspector vs best other"]
    rows, details = [], []
    for level in subj.levels:
        ok = lambda p, lv=level: subj.meets(p.score.value, lv)  # noqa: E731
        cells = {c.name: best(points, c, ok) for c in cols}
        row = [level_name(subj, level)]
        for c in cols:
            p = cells[c.name]
            row.append("-" if p is None else f"{fp32 / p.nbytes:.1f}x ({p.nbytes:,} B)")
        row += [_winner(cols, cells), _ours_vs_other(cols, cells)]
        rows.append(row)
        line = "; ".join(f"{c.name}: {p.label} ({_score(subj, p)})" for c in cols
                         if (p := cells[c.name]) is not None and "(best" not in c.name
                         and c.name not in SINGLE)
        details.append(f"- {level_name(subj, level)}: {line or 'no codec reaches it'}")
    named = [f"- {c.name}: {fp32 / p.nbytes:.1f}x ({p.nbytes:,} B), {_score(subj, p)}"
             for c in cols if c.name in SINGLE for p in points if c.takes(p)]
    out += [_table(head, rows), "", "Settings of each smallest point (and its score):", "",
            *details, "", "Single points, whatever their fidelity:", "", *named, "",
            *_loss_lines(subj, cols, points), "", *_nnc_lambda0(subj, points),
            *([f"Sweep times (wall): {'; '.join(times)}.", ""] if times else [])]
    return "\n".join(out)


def _nnc_lambda0(subj: Subject, points: list[Point]) -> list[str]:
    """NNCodec without its rate-distortion quantizer (lambda 0), as issue 12 first measured
    it: the sweep of lambda moves its smallest files further."""
    plain = Column("", "", False, lambda p: p.codec == "NNCodec" and p.label.endswith(
        "lambda 0"))
    got = []
    for level in subj.levels:
        p = best(points, plain, lambda p, lv=level: subj.meets(p.score.value, lv))
        if p is not None:
            got.append(f"{level_name(subj, level)} {subj.fp32_nbytes / p.nbytes:.2f}x "
                       f"({p.label}, {_score(subj, p)})")
    return [f"NNCodec at lambda 0 only: {'; '.join(got)}.", ""] if got else []


def _score(subj: Subject, p: Point) -> str:
    v = f"drop {p.score.value:+.1f} pt" if subj.metric == "drop" else f"{p.score.value:.4f}"
    return f"{v}, {p.score.note}"


def _winner(cols: list[Column], cells: dict[str, Point | None]) -> str:
    have = [(p.nbytes, c) for c in cols if (p := cells[c.name]) is not None]
    if not have:
        return "-"
    n, win = min(have, key=lambda t: t[0])
    others = [m for m, c in have if c.codec != win.codec]
    if not others:
        return win.name
    return f"{win.name}, {min(others) / n:.2f}x smaller than the next codec"


def _ours_vs_other(cols: list[Column], cells: dict[str, Point | None]) -> str:
    ours = [p.nbytes for c in cols if c.ours and (p := cells[c.name]) is not None]
    other = [p.nbytes for c in cols if not c.ours and (p := cells[c.name]) is not None]
    if not ours or not other:
        return "-"
    r = min(other) / min(ours)
    return f"{r:.2f}x ({'wins' if r > 1 else 'loses' if r < 1 else 'ties'})"


def _loss_lines(subj: Subject, cols: list[Column], points: list[Point]) -> list[str]:
    lost = []
    for level in subj.levels:
        ok = lambda p, lv=level: subj.meets(p.score.value, lv)  # noqa: E731
        cells = {c.name: best(points, c, ok) for c in cols}
        ours = [(p.nbytes, c.name) for c in cols if c.ours and (p := cells[c.name])]
        other = [(p.nbytes, c.name) for c in cols if not c.ours and (p := cells[c.name])]
        if other and (not ours or min(ours)[0] > min(other)[0]):
            o = min(other)
            if ours:
                u = min(ours)
                lost.append(f"{level_name(subj, level)}: {o[1]} {o[0]:,} B, our best "
                            f"({u[1]}) {u[0]:,} B, {u[0] / o[0]:.2f}x larger")
            else:
                lost.append(f"{level_name(subj, level)}: {o[1]} {o[0]:,} B; none of ours "
                            "reaches the level")
    if not lost:
        return ["Where we lose: nowhere on this model."]
    return ["Where we lose:", "", *(f"- {x}" for x in lost)]


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def summary(results: list[tuple[Subject, list[Point]]]) -> str:
    """One row per model and level: the smallest file of NNCodec, of int-N + zstd and of
    ours, as ratios, and ours against the best that is not ours."""
    head = ["model", "level", "NNCodec", "int-N+zstd", "inspector (best)", "smallest",
            "inspector vs best other"]
    rows = [_summary_row(subj, points, columns(points), level)
            for subj, points in results for level in subj.levels]
    return "\n".join(["## Summary", "", _table(head, rows), ""])


def _summary_row(subj: Subject, points: list[Point], cols: list[Column], level: float
                 ) -> list[str]:
    cells = {c.name: best(points, c, lambda p: subj.meets(p.score.value, level)) for c in cols}

    def ratio(which: Callable[[Column], bool]) -> str:
        got = [p.nbytes for c in cols if which(c) and (p := cells[c.name])]
        return f"{subj.fp32_nbytes / min(got):.1f}x" if got else "-"

    return [subj.name, level_name(subj, level), ratio(lambda c: c.codec == "NNCodec"),
            ratio(lambda c: c.codec == "int-N"), ratio(lambda c: c.ours),
            _winner(cols, cells).split(",")[0], _ours_vs_other(cols, cells)]
