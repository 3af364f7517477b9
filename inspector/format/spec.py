"""Constants of the compressed container (docs/format.md is the prose version)."""

from __future__ import annotations

MAGIC = b"\x89DCZ"
VERSION = 2  # written; docs/format.md describes both
READ_VERSIONS = (1, 2)
PREFIX_NBYTES = 10  # magic, version, flags, u32 header length
CRC_NBYTES = 4

RAW = 0
DEEP = 1
METHODS = {RAW: "raw", DEEP: "deep"}  # version 1
RAW_FP16 = 2  # version 2: a float layer stored losslessly as float16
RAW_BF16 = 3  # ... or as bfloat16
METHODS_V2 = {**METHODS, RAW_FP16: "raw float16", RAW_BF16: "raw bfloat16"}
STORED_METHODS = {"float16": RAW_FP16, "bfloat16": RAW_BF16}
#: Method bytes from here up name a registered method (inspector.core.stages.registry) whose
#: record carries ``varint(len(params)) + params`` after the payload CRC.
FIRST_REGISTERED = 16

DTYPES: dict[str, tuple[int, int]] = {  # name: (code, item size)
    "float32": (1, 4),
    "float16": (2, 2),
    "bfloat16": (3, 2),
    "float64": (4, 8),
    "int8": (5, 1),
    "uint8": (6, 1),
    "int16": (7, 2),
    "int32": (8, 4),
    "int64": (9, 8),
    "bool": (10, 1),
    "uint16": (11, 2),
    "uint32": (12, 4),
    "uint64": (13, 8),
}
DTYPE_NAMES = {code: name for name, (code, _) in DTYPES.items()}

POLICY_CODES = {"std": 0, "sparsity": 1, "threshold": 2}
INIT_CODES = {"optimal": 0, "linear": 1, "density": 2, "random": 3}

# flag bits of a deep-compressed layer record
F_HUFFMAN = 1  # the setting asked for Huffman coding
F_STD_NONZERO = 2  # std policy over nonzero weights
F_WEIGHT_HUFFMAN = 4  # the weight-index stream is Huffman coded
F_GAP_HUFFMAN = 8  # the gap stream is Huffman coded
F_FILLER = 16  # the weight alphabet has the filler symbol (index = codebook size)

MAX_NDIM = 32
MAX_ELEMENTS = 1 << 40
MAX_NAME_NBYTES = 4096
MAX_CODEBOOK = 256
