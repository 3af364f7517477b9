"""Corpus entries for version-2 ``.dcz`` forms (issue 11, class 6): position bitmaps, holes,
dense layers, constant streams, float16 and delta-coded codebooks, each damaged so that its
record and its payload disagree while every CRC is right; and the container's metadata block,
damaged, oversized or malformed.

The other ``.dcz`` entries start from a version-1 file, whose layers use none of these forms.
These start from the committed golden file ``tests/format/golden/v2/positions.dcz`` (one layer
of each form) and keep only the damaged layer, so each case is a few hundred bytes. Called by
``scripts/make_corpus.py``; ``python scripts/corpus_dcz.py`` rewrites only these entries and
``tests/corpus/manifest_dcz.json``.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "format" / "golden" / "v2" / "positions.dcz"
MANIFEST = "manifest_dcz.json"


def layer_of(name: str) -> tuple[Any, bytes]:
    """Record and payload of layer ``name`` of the golden file."""
    from corpus_bounds import dcz_parts  # type: ignore[import-not-found]

    records, payloads = dcz_parts(SOURCE.read_bytes())
    index = next(i for i, r in enumerate(records) if r.name == name)
    return records[index], payloads[index]


def one_layer(record: Any, payload: bytes) -> bytes:
    """A version-2 file of this one layer, every CRC right."""
    from corpus_bounds import dcz_from

    return dcz_from([dataclasses.replace(record, payload_nbytes=len(payload))], [payload], 2)


def with_layout(record: Any, **changes: Any) -> Any:
    deep = record.deep
    return dataclasses.replace(
        record, deep=dataclasses.replace(deep, layout=dataclasses.replace(deep.layout, **changes)))


def padded(name: str, extra: bytes = b"\0\0\0") -> bytes:
    """Layer ``name`` with bytes after its last stream, inside its payload."""
    record, payload = layer_of(name)
    return one_layer(record, payload + extra)


def weight_stream_long(name: str) -> bytes:
    """Layer ``name`` whose record says its weight stream is one byte longer, and a byte
    inserted after the weight codes so the position codes still start where they did."""
    from inspector.format.verify import check_deep_payload

    record, payload = layer_of(name)
    lay = record.deep.layout
    symbols = check_deep_payload(record, payload)
    end = len(payload) - _position_nbytes(record, payload, symbols)
    grown = with_layout(record, weight_nbytes=lay.weight_nbytes + 1)
    return one_layer(grown, payload[:end] + b"\0" + payload[end:])


def _position_nbytes(record: Any, payload: bytes, symbols: Any) -> int:
    """Bytes of the position codes at the end of the payload (the fixed-width forms here)."""
    from inspector.core.positions import BITMAP, DENSE

    lay = record.deep.layout
    if lay.positions == DENSE or lay.gap_constant:
        return 0
    if lay.positions == BITMAP:
        return (record.size + 7) // 8
    assert not lay.gap_huffman
    return (symbols.positions.size * lay.index_bits + 7) // 8


def holes_trailing_skip() -> bytes:
    """The holes layer with a skip symbol appended to its position stream (the stream must end
    with its last hole); the hole count in the record grows by one."""
    from inspector.core.bitpack import pack_fixed
    from inspector.format.verify import check_deep_payload

    record, payload = layer_of("nearly.weight")
    lay = record.deep.layout
    assert not lay.gap_huffman and not lay.gap_constant
    symbols = check_deep_payload(record, payload)
    esc = (1 << lay.index_bits) - 1
    stream = np.append(symbols.positions, np.uint32(esc))
    head = payload[: len(payload) - _position_nbytes(record, payload, symbols)]
    longer = with_layout(record, position_entries=lay.position_entries + 1)
    return one_layer(longer, head + pack_fixed(stream, lay.index_bits))


def bitmap_bit_cleared() -> bytes:
    """The bitmap layer with its first set bit cleared: one kept weight fewer than recorded."""
    record, payload = layer_of("half.weight")
    start = len(payload) - (record.size + 7) // 8
    out = bytearray(payload)
    pos = next(i for i in range(start, len(out)) if out[i])
    out[pos] &= out[pos] - 1  # clears the lowest set bit
    return one_layer(record, bytes(out))


def bitmap_padding_set() -> bytes:
    """The bitmap layer one element shorter, so its bitmap's last bit becomes padding, with
    that bit set (and one earlier kept bit cleared): as many bits set as the record counts, one
    of them past the layer."""
    record, payload = layer_of("half.weight")
    out = bytearray(payload)
    start = len(out) - (record.size + 7) // 8
    if not out[-1] & 1:  # the last element becomes padding: make it a set bit
        first = next(i for i in range(start, len(out)) if out[i])
        out[first] &= out[first] - 1
        out[-1] |= 1
    shorter = dataclasses.replace(record, shape=(record.size - 1,))
    shorter = with_layout(shorter, size=record.size - 1)
    return one_layer(shorter, bytes(out))


def codebook_edit(name: str, edit: Callable[[bytearray], None]) -> bytes:
    record, payload = layer_of(name)
    out = bytearray(payload)
    edit(out)
    return one_layer(record, bytes(out))


def _half_nan(out: bytearray) -> None:
    out[0:2] = np.float16(np.nan).tobytes()


def _coded_key_huge(out: bytearray) -> None:
    out[0:3] = b"\xff\xff\x07"  # the first key as 0x1FFFFF, past every float16 pattern


def with_block(block: bytes, version: int = 2, flags: int = 1) -> bytes:
    """The raw layer of the golden file, ``flags`` in its prefix and ``block`` after the header
    CRC (the metadata block's place)."""
    from inspector.format import spec

    record, payload = layer_of("wide.bias")
    data = one_layer(record, payload)
    if version != 2:
        from corpus_bounds import dcz_from

        data = dcz_from([record], [payload], version)
    (hlen,) = struct.unpack_from("<I", data, 6)
    start = spec.PREFIX_NBYTES + hlen + spec.CRC_NBYTES
    return data[:4] + bytes([version, flags]) + data[6:start] + block + data[start:]


def block_of(text: bytes, length: int | None = None, crc: int | None = None) -> bytes:
    """A metadata block holding ``text``, its length and CRC right unless given."""
    n = len(text) if length is None else length
    return struct.pack("<I", n) + text + struct.pack("<I", zlib.crc32(text) if crc is None else crc)


def add_metadata(c: Any) -> None:
    """The container's metadata block (flag 1 of version 2): damaged, oversized, malformed."""
    good = block_of(b'{"format":"pt"}')
    c.add("any_dcz_v2_metadata.dcz", with_block(good), "a valid metadata block", "reads")
    c.add("dcz_v2_metadata_crc.dcz", with_block(good[:-4] + bytes([good[-4] ^ 1]) + good[-3:]),
          "the metadata block's CRC one bit off", "metadata block is damaged")
    c.add("dcz_v2_metadata_huge.dcz", with_block(block_of(b"{}", length=0xFFFFFFF0)),
          "a metadata block claiming 4 GB", "more than the limit", huge=True)
    c.add("dcz_v2_metadata_past_end.dcz", with_block(block_of(b"{}", length=5000)),
          "a metadata block claiming 5000 bytes in a smaller file", "metadata block is truncated")
    c.add("dcz_v2_metadata_not_object.dcz", with_block(block_of(b'[["format","pt"]]')),
          "metadata that is a JSON list of pairs, not an object", "not a JSON object")
    c.add("dcz_v2_metadata_nested.dcz", with_block(block_of(b'{"a":{"b":"c"}}')),
          "a metadata value that is an object", "is not a string")
    c.add("dcz_v2_metadata_duplicate.dcz", with_block(block_of(b'{"a":"1","a":"2"}')),
          "a metadata key written twice", "twice")
    c.add("dcz_v2_metadata_deep.dcz", with_block(block_of(b"[" * 3000 + b"]" * 3000)),
          "brackets nested 3000 deep as metadata (recursion in a JSON parser)", "not valid JSON")
    c.add("dcz_v2_metadata_not_utf8.dcz", with_block(block_of(b'{"a":"' + bytes([0xFF]) + b'"}')),
          "metadata bytes that are not UTF-8", "not valid JSON")
    c.add("dcz_v1_metadata_flag.dcz", with_block(good, version=1),
          "flag 1 and a metadata block in a version-1 file (version 2 only)",
          "unknown file flags")


def build(folder: Path) -> list[dict[str, Any]]:
    """Write the version-2 ``.dcz`` entries into ``folder`` and their manifest."""
    from make_corpus import Corpus  # type: ignore[import-not-found]

    c = Corpus(folder)
    c.add("dcz_v2_bitmap_padding.dcz", padded("half.weight"),
          "3 bytes after a bitmap layer's position bitmap, inside its payload",
          "do not end where")  # fmt: skip
    c.add("dcz_v2_holes_padding.dcz", padded("nearly.weight"),
          "3 bytes after a holes layer's position stream, inside its payload",
          "do not end where")  # fmt: skip
    c.add("dcz_v2_dense_padding.dcz", padded("dense.weight", b"\0"),
          "a byte after a dense layer's weight codes, inside its payload", "do not end where")
    c.add("dcz_v2_constant_padding.dcz", padded("strided.weight", b"\0\0"),
          "2 bytes after a layer whose gap stream is constant (0 code bytes)",
          "does not end where")  # fmt: skip
    c.add("dcz_v2_dense_weight_stream_long.dcz", weight_stream_long("dense.weight"),
          "a dense layer's weight stream one byte longer than its codes", "weight stream")
    c.add("dcz_v2_bitmap_weight_stream_long.dcz", weight_stream_long("half.weight"),
          "a bitmap layer's Huffman weight stream one byte longer than its codes",
          "weight stream")  # fmt: skip
    c.add("dcz_v2_holes_trailing_skip.dcz", holes_trailing_skip(),
          "a holes layer's position stream ending with a skip", "end with a skip")
    c.add("dcz_v2_bitmap_bit_cleared.dcz", bitmap_bit_cleared(),
          "a bitmap layer with one kept weight fewer than its record counts", "kept weights")
    c.add("dcz_v2_bitmap_padding_bit.dcz", bitmap_padding_set(),
          "a bitmap whose last kept bit moved into the padding past the layer", "kept weights")
    c.add("dcz_v2_half_codebook_nan.dcz", codebook_edit("dense.weight", _half_nan),
          "a NaN in a float16 codebook", "not finite")
    c.add("dcz_v2_coded_codebook_key.dcz", codebook_edit("fine.weight", _coded_key_huge),
          "a delta-coded codebook's first key past 0xFFFF", "varint exceeds")
    add_metadata(c)
    doc = {**json.loads(c.manifest()), "generator": "scripts/corpus_dcz.py"}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")
    return c.entries


def main() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    entries = build(ROOT / "tests" / "corpus")
    print(f"wrote {len(entries)} version-2 .dcz entries and {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
