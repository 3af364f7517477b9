"""The model-wide memory bound of a reader: what it materialises, summed over every tensor.

Checking each tensor against the file's size is not enough: 10,000 tensors may each view the
same 256 KB of a PyTorch storage, an npz member or an ONNX external file, and a 257 KB file then
reads as 3.2 GB. A reader makes one :class:`Budget` per file and charges every tensor to it
before materialising it:

* ``stored`` bytes (the tensor's size in the dtype the file stores) count against a multiple
  ``ratio`` of the input's size, for formats whose tensors cannot legitimately be larger than
  the bytes holding them (PyTorch, ONNX). Deflate-compressed formats (npz, .keras) pass
  ``ratio=DEFLATE_RATIO``; our own ``.dcz``, where a few bits stand for 2**16 pruned zeros, has
  only the memory bound (:mod:`inspector.format.verify`).
* ``materialised`` bytes (the array as read, widened dtypes included) count against
  :func:`~inspector.format.verify.memory_budget`, half this machine's memory.

Tensors that are the very same view of one storage (tied weights) are charged once.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

from inspector.errors import InputError
from inspector.format.verify import memory_budget
from inspector.io.zip_bounds import DEFLATE_RATIO

__all__ = ["DEFLATE_RATIO", "SLACK_NBYTES", "Budget"]

#: Bytes any file may materialise beyond ``ratio`` times its size (headers, tiny models).
SLACK_NBYTES = 64 << 10


class Budget:
    """Running totals of one reader's tensors, refusing the first that goes over a bound.

    Parameters
    ----------
    path : Path
        The file, for the message.
    input_nbytes : int
        Bytes of input the tensors come from (the file, plus an ONNX model's external data).
    ratio : float or None
        How many times ``input_nbytes`` the stored tensors may add up to; None: no such bound.
    """

    def __init__(self, path: Path, input_nbytes: int, ratio: float | None) -> None:
        self.path = path
        self.input_nbytes = input_nbytes
        self.stored_limit = None if ratio is None else int(ratio * input_nbytes) + SLACK_NBYTES
        self.memory_limit = memory_budget()
        self.stored = 0
        self.materialised = 0
        self._seen: set[Hashable] = set()

    def take(self, name: str, stored: int, materialised: int | None = None,
             key: Hashable | None = None) -> None:
        """Charge tensor ``name``: ``stored`` bytes in the file's dtype, ``materialised`` in
        memory (default ``stored``); a ``key`` already charged (a tied weight) costs nothing.

        Raises
        ------
        InputError
            The model's tensors so far exceed either bound.
        """
        if key is not None:
            if key in self._seen:
                return
            self._seen.add(key)
        self.stored += stored
        self.materialised += stored if materialised is None else materialised
        if self.stored_limit is not None and self.stored > self.stored_limit:
            raise InputError(
                f"its tensors up to {name!r} claim {self.stored:,} bytes, more than its "
                f"{self.input_nbytes:,} bytes of data can hold (shared, overlapping or doubly "
                "packed data)",
                self.path,
            )
        if self.materialised > self.memory_limit:
            raise InputError(
                f"its tensors up to {name!r} take {self.materialised / 2**30:,.2f} GiB, more "
                f"than the {self.memory_limit / 2**30:,.2f} GiB memory budget (half this "
                "machine's memory)",
                self.path,
            )

    def take_torch(self, name: str, tensor: Any) -> None:
        """Charge a torch tensor by its view of its storage.

        Its storage is already in memory (legacy files) or mapped from the file (zip): only
        the copies reading makes count as materialised, a sparse tensor's dense form and a
        dtype numpy lacks widened to float32; every distinct view counts as stored.
        """
        import torch  # whoever holds a tensor has imported it already

        numel = tensor.numel()
        if tensor.layout != torch.strided:  # its dense form is made in memory
            self.take(name, 0, numel * max(tensor.element_size(), 4))
            return
        float8 = tensor.is_floating_point() and tensor.element_size() == 1
        widened = float8 or str(tensor.dtype) in _WIDENED
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
               tuple(tensor.shape), tuple(tensor.stride()), str(tensor.dtype))  # fmt: skip
        self.take(name, numel * tensor.element_size(), 4 * numel if widened else 0, key)


# torch dtypes numpy lacks, read as float32 (complex32 as complex64); float8 by their size
_WIDENED = frozenset({"torch.bfloat16", "torch.complex32"})
