"""The paper's per-layer table (Deep Compression, Table 2-5 columns) from plans or from a file."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from inspector.core.codebook import coded_nbytes
from inspector.core.layer import LayerPlan, decode_symbols
from inspector.core.positions import BITMAP, DENSE, plan_bitmap, plan_dense
from inspector.core.stages import registry
from inspector.core.stages.deep_record import encode_deep
from inspector.core.streams import CONSTANT, FIXED, HUFFMAN, fixed_width, plan_stream_as
from inspector.format.container import Container
from inspector.format.header import LayerRecord
from inspector.io.kinds import layer_kind
from inspector.tasks.codec import ModelEstimate


@dataclass(frozen=True, slots=True)
class Row:
    """One layer of the table. Bits are per surviving weight; rates are compressed/original."""

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    params: int
    original_nbytes: int
    method: str
    kept: float
    clusters: int
    weight_bits_pq: float
    weight_bits_pqh: float
    index_bits_pq: float
    index_bits_pqh: float
    weight_code_nbytes: int
    index_code_nbytes: int
    codebook_nbytes: int
    table_nbytes: int
    raw_nbytes: int
    compressed_nbytes: int
    rate_pq: float
    rate_pqh: float
    sqnr_db: float
    recipe: dict[str, Any] | None = None  # Method.describe of the record (None: raw)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        if d["recipe"] is None:
            del d["recipe"]
        return {k: _json_number(v) for k, v in d.items()}


def recipe(record: LayerRecord) -> dict[str, Any] | None:
    """How a record's layer is coded, as its method describes its parameters (None: raw)."""
    if record.coded is not None:
        return registry.method(record.coded.method).describe(record.coded.params)
    if record.deep is not None:
        return registry.method("deep").describe(encode_deep(record.deep))
    return None


def coded_row(name: str, kind: str, record: LayerRecord, original_nbytes: int,
              zeros: int, sqnr_db: float) -> Row:
    """The table row of a layer of a registered method other than deep."""
    size, nbytes = record.size, record.payload_nbytes
    bits = 8.0 * nbytes / size if size else 0.0
    rate = _rate(nbytes, original_nbytes)
    return Row(
        name, kind, record.shape, record.dtype, size, original_nbytes, record.method,
        (size - zeros) / size if size else 0.0, 0, bits, bits, 0.0, 0.0, nbytes, 0, 0, 0, 0,
        nbytes, rate, rate, sqnr_db, recipe(record),
    )


def row(
    name: str, kind: str, record: LayerRecord, original_nbytes: int, plan: LayerPlan | None
) -> Row:
    """The table row of one layer (``plan`` None: stored losslessly)."""
    size = record.size
    if plan is None:
        bits = 8.0 * record.itemsize
        return Row(
            name, kind, record.shape, record.dtype, size, original_nbytes, "raw", 1.0, 0,
            bits, bits, 0.0, 0.0, 0, 0, 0, 0, record.payload_nbytes, record.payload_nbytes,
            *(2 * [_rate(record.payload_nbytes, original_nbytes)]),
            math.inf,
        )
    surv = max(plan.survivors, 1)
    w, g = plan.weights, plan.gaps
    # P+Q: both streams fixed width (a position code other than GAPS has its own stream)
    pq_nbytes = plan.codebook_nbytes + (w.width * w.count + 7) // 8 + (g.width * g.count + 7) // 8
    return Row(
        name, kind, record.shape, record.dtype, size, original_nbytes, "deep",
        plan.survivors / size if size else 0.0,
        int(plan.codebook.size),
        w.width * w.count / surv,
        w.huffman_nbits / surv,
        g.width * g.count / surv,
        g.huffman_nbits / surv,
        w.code_nbytes,
        g.code_nbytes,
        plan.codebook_nbytes,
        plan.table_nbytes,
        0,
        plan.payload_nbytes,
        _rate(pq_nbytes, original_nbytes),
        _rate(plan.payload_nbytes, original_nbytes),
        plan.sqnr_db,
    )


def rows_of_estimate(est: ModelEstimate, recipes: bool = False) -> list[Row]:
    """Table rows of an in-memory estimate; ``recipes``: deep rows describe their record too
    (the app's summary, on every estimate, does without)."""
    out = []
    for r in est.layers:
        if r.coded is not None:
            out.append(coded_row(r.info.name, r.info.kind, r.record, r.original_nbytes,
                                 r.coded.zeros, r.coded.sqnr_db))
            continue
        one = row(r.info.name, r.info.kind, r.record, r.original_nbytes, r.plan)
        out.append(replace(one, recipe=recipe(r.record)) if recipes else one)
    return out


def rows_of_container(box: Container) -> list[Row]:
    """Table rows of a compressed file, its streams decoded to recount every column exactly."""
    rows = []
    for i, rec in enumerate(box.records):
        original = rec.size * rec.itemsize
        kind = layer_kind(rec.name, rec.shape, rec.dtype)
        if rec.coded is not None:
            zeros = rec.size - int(np.count_nonzero(box.read_layer(i)))
            rows.append(coded_row(rec.name, kind, rec, original, zeros, math.nan))
            continue
        plan = None if rec.deep is None else _plan_of(box, i)
        rows.append(replace(row(rec.name, kind, rec, original, plan), recipe=recipe(rec)))
    return rows


def _plan_of(box: Container, index: int) -> LayerPlan:
    rec = box.records[index]
    deep = rec.deep
    assert deep is not None
    lay = deep.layout
    payload = box.payload(index)
    codebook, wsym, gsym = decode_symbols(payload, lay)
    walpha = lay.codebook_size + lay.has_filler
    wcounts = np.bincount(wsym, minlength=walpha).astype(np.int64)
    weights = plan_stream_as(wcounts, fixed_width(walpha), _mode(lay.weight_huffman,
                                                                  lay.weight_constant))
    if lay.positions == DENSE:
        gaps = plan_dense()
    elif lay.positions == BITMAP:
        gaps = plan_bitmap(lay.size)
    else:
        gcounts = np.bincount(gsym, minlength=1 << lay.index_bits).astype(np.int64)
        gaps = plan_stream_as(gcounts, lay.index_bits, _mode(lay.gap_huffman, lay.gap_constant))
    return LayerPlan(
        deep.settings, lay.size, deep.mask, deep.survivors, lay.entries - deep.survivors,
        codebook, wcounts[: lay.codebook_size], weights, gaps, math.nan, math.nan, math.nan,
        lay.positions, lay.codebook_half, coded_nbytes(codebook) if lay.codebook_coded else -1,
    )


def _mode(huffman: bool, constant: bool) -> int:
    return HUFFMAN if huffman else CONSTANT if constant else FIXED


def totals(rows: list[Row], file_nbytes: int) -> dict[str, Any]:
    """Whole-model figures: weights kept, bytes before and after, ratio. A layer of a method
    other than deep keeps the weights it does not decode to zero (a uniform grid's zero cell
    is its pruning)."""
    lossy = [r for r in rows if r.method != "raw"]
    params = sum(r.params for r in lossy)
    kept = sum(r.kept * r.params for r in lossy) / params if params else 1.0
    original = sum(r.original_nbytes for r in rows)
    return {
        "original_nbytes": original,
        "file_nbytes": file_nbytes,
        "ratio": original / file_nbytes if file_nbytes else None,
        "rate": file_nbytes / original if original else None,
        "compressed_params": params,
        "kept": kept,
    }


def format_table(rows: list[Row], total: dict[str, Any]) -> str:
    """The table as aligned text for a terminal."""
    # Full names and kinds, however long: names cut to a prefix would print alike.
    nw = max([5, *(len(r.name) for r in rows)])
    kw = max([4, *(len(r.kind) for r in rows)])
    head = (
        f"{'layer':<{nw}} {'kind':<{kw}} {'params':>10} {'kept':>7} {'K':>4} "
        f"{'wbits P+Q':>9} {'+H':>5} {'ibits P+Q':>9} {'+H':>5} {'bytes':>10} {'rate':>7} "
        f"{'SQNR':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        sqnr = f"{r.sqnr_db:6.1f} dB" if math.isfinite(r.sqnr_db) else "      -  "
        if r.method not in ("raw", "deep"):
            lines.append(
                f"{r.name:<{nw}} {r.kind:<{kw}} {r.params:>10,} {r.method:>7} {'':>4} "
                f"{r.weight_bits_pqh:>9.2f} {'':>5} {'':>9} {'':>5} {r.compressed_nbytes:>10,} "
                f"{100 * r.rate_pqh:>6.2f}% {sqnr}"
            )
            continue
        if r.method == "raw":
            lines.append(
                f"{r.name:<{nw}} {r.kind:<{kw}} {r.params:>10,} {'raw':>7} {'':>4} "
                f"{'':>9} {'':>5} {'':>9} {'':>5} {r.compressed_nbytes:>10,} "
                f"{100 * r.rate_pqh:>6.1f}% {'':>7}"
            )
            continue
        lines.append(
            f"{r.name:<{nw}} {r.kind:<{kw}} {r.params:>10,} {100 * r.kept:>6.2f}% "
            f"{r.clusters:>4} {r.weight_bits_pq:>9.2f} {r.weight_bits_pqh:>5.2f} "
            f"{r.index_bits_pq:>9.2f} {r.index_bits_pqh:>5.2f} {r.compressed_nbytes:>10,} "
            f"{100 * r.rate_pqh:>6.2f}% {sqnr}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"original {total['original_nbytes']:,} bytes -> file {total['file_nbytes']:,} bytes: "
        f"{total['ratio']:.1f}x smaller ({100 * total['rate']:.2f}%); "
        f"{100 * total['kept']:.2f}% of compressed layers' weights kept"
    )
    return "\n".join(lines)


def _rate(compressed: int, original: int) -> float:
    return compressed / original if original else math.nan


def _json_number(v: Any) -> Any:
    """JSON has no inf or nan: they become null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v
