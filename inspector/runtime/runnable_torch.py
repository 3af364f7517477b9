"""Running torch modules: TorchScript archives, and pickled modules when the user opts in."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspector.errors import InputError
from inspector.io._torch import numpy_to_tensor
from inspector.io.model_file import LoadedModel
from inspector.io.torchscript import load_script, module_tensors, torch_reason
from inspector.io.torchscript_types import script_kinds
from inspector.runtime.runnable import Runnable, cannot_run, run_failed

_WEIGHTS_ONLY = (
    "it holds only weights (a state dict or checkpoint), not the network; save the network "
    "with torch.jit.script(model).save(path) or export it to ONNX"
)
_PICKLED = (
    "it is a pickled Python object (a whole module saved with torch.save(model, path)); "
    "loading it runs code from the file, so inspector does that only when asked: pass "
    "allow_pickle=True (--allow-pickle) for a file you trust, or save it with "
    "torch.jit.script(model).save(path)"
)


class TorchRunnable(Runnable):
    """A torch module in eval mode whose parameters and buffers can be swapped in place."""

    def __init__(self, path: Path, module: Any, format: str) -> None:
        self.path = str(path)
        self.format = format
        self._module = module.eval()  # batch norm and dropout as in inference
        # Live tensors: a substitution copies into them, so the module's own code sees it.
        self._tensors: dict[str, torch.Tensor] = dict(module.state_dict(keep_vars=True))
        self.names = tuple(self._tensors)
        floats = [t.dtype for t in self._tensors.values() if t.dtype.is_floating_point]
        self._input_dtype = floats[0] if floats else torch.float32

    @classmethod
    def open_script(cls, path: Path, *, allow_code: bool) -> TorchRunnable:
        """Load a TorchScript archive (``torch.jit.load``), only when ``allow_code`` (it runs
        the archive's code)."""
        return cls(path, load_script(path, allow_code=allow_code), "torchscript")

    @classmethod
    def open_pickle(cls, path: Path, *, allow_pickle: bool) -> TorchRunnable:
        """Unpickle a whole saved module, only when ``allow_pickle`` (it runs code)."""
        if not allow_pickle:
            raise cannot_run(path, _refusal(path))
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # unpickling can fail in any way (missing class, corrupt...)
            raise cannot_run(path, f"torch cannot unpickle it ({torch_reason(exc)})") from None
        if not isinstance(obj, torch.nn.Module):
            if isinstance(obj, Mapping):
                raise cannot_run(path, _WEIGHTS_ONLY)
            raise cannot_run(path, f"it holds a {type(obj).__name__}, not a torch.nn.Module")
        return cls(path, obj, "pytorch")

    def reference(self) -> LoadedModel:
        tensors, dtypes = module_tensors(self._module, Path(self.path))
        # the same kinds the TorchScript reader gives, so evaluation compresses what Export does
        kinds = script_kinds(Path(self.path)) if self.format == "torchscript" else None
        return LoadedModel.build(self.path, self.format, tensors, dtypes, kinds=kinds)

    @contextmanager
    def substituted(self, weights: Mapping[str, np.ndarray]) -> Iterator[None]:
        self.check_weights(weights)
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        try:
            with torch.no_grad():
                for name, array in weights.items():
                    target = self._tensors[name]
                    _check_shape(self.path, name, array.shape, tuple(target.shape))
                    original = target.detach().clone()
                    target.copy_(numpy_to_tensor(np.asarray(array)))  # casts to the dtype
                    saved.append((target, original))
            yield
        finally:
            with torch.no_grad():
                for target, original in reversed(saved):
                    target.copy_(original)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return _logits(self.path, _first_tensor(self._call(batch)), batch.shape[0])

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        count = batch.shape[0]
        kept = tuple(t.detach().to(torch.float32).numpy() for t in _tensors(self._call(batch))
                     if t.ndim > 0 and t.shape[0] == count)
        if not kept:
            raise cannot_run(self.path, "no output is a tensor with a batch axis")
        return kept

    def _call(self, batch: np.ndarray) -> Any:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self._input_dtype)
        try:
            with torch.inference_mode():
                return self._module(x)
        except Exception as exc:  # TorchScript reports shape mismatches as RuntimeError
            raise run_failed(self.path, batch.shape, torch_reason(exc)) from None


def _check_shape(path: str, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if tuple(got) != want:
        raise InputError(f"tensor {name!r} has shape {list(got)}, the model's {list(want)}", path)


def _first_tensor(out: Any) -> Any:
    """Models may return a tuple or dict of outputs; the first is taken as the logits."""
    if isinstance(out, Mapping):
        out = next(iter(out.values()), None)
    elif isinstance(out, (list, tuple)):
        out = out[0] if out else None
    return out


def _tensors(out: Any) -> list[Any]:
    """Every tensor of a (nested) tuple, list or dict of outputs, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def _logits(path: str, out: Any, count: int) -> np.ndarray:
    if not isinstance(out, torch.Tensor):
        raise cannot_run(path, f"its output is a {type(out).__name__}, not a tensor of logits")
    if out.ndim == 0 or out.shape[0] != count:
        shape = list(out.shape)
        raise cannot_run(path, f"its output has shape {shape} for {count} examples, not [N, C]")
    return out.detach().to(torch.float32).reshape(count, -1).numpy()


def _refusal(path: Path) -> str:
    """Why a torch.save file cannot run without ``allow_pickle``, learned with the safe loader."""
    import pickle

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        return _PICKLED
    except Exception as exc:
        return f"corrupt or truncated PyTorch file ({torch_reason(exc)})"
    return _WEIGHTS_ONLY
