"""sandscore for Python scoring scripts.

An Azure ML ``score.py`` keeps its ``init()`` and ``run(raw_data)``; the only
change is that models are reached through this module instead of a framework
import, because inside the sandbox the model runs in the host's native
runtime (ONNX Runtime, XGBoost, …) behind wasi-nn::

    import json
    import sandscore

    def init():
        global model
        model = sandscore.Model.by_name("mlp")      # a file in the model directory

    def run(raw_data):
        rows = json.loads(raw_data)["data"]
        out = model.run({"input": sandscore.Tensor.of(rows)})
        return {"probabilities": out["probabilities"].tolist()}

What the sandbox allows: pure Python and the standard library modules
imported at the top of a file; no numpy, threads, sockets or subprocesses;
files only under the model directory (``/models``, read-only).
"""

import sys

from componentize_py_types import Err
from wit_world.imports import errors as _nn_errors
from wit_world.imports import graph as _graph
from wit_world.imports import logging as _logging
from wit_world.imports import tensor as _tensor

__all__ = [
    "BadRequest",
    "NotFound",
    "ModelError",
    "Model",
    "Tensor",
    "Response",
    "rawhttp",
    "log",
]

from ._core import BadRequest, ModelError, NotFound, Request, Response, Tensor, rawhttp  # noqa: F401

# V2 datatype names → wasi-nn types.
_TYPES = {
    "FP16": _tensor.TensorType.FP16,
    "BF16": _tensor.TensorType.BF16,
    "FP32": _tensor.TensorType.FP32,
    "FP64": _tensor.TensorType.FP64,
    "UINT8": _tensor.TensorType.U8,
    "INT32": _tensor.TensorType.I32,
    "INT64": _tensor.TensorType.I64,
}
_NAMES = {t: name for name, t in _TYPES.items()}


def _to_wasi(t):
    return _tensor.Tensor(t.shape, _TYPES[t.dtype], t.data)


def _from_wasi(t):
    return Tensor(t.data(), t.dimensions(), _NAMES[t.ty()])


def _model_error(e):
    """A wasi-nn error as a ModelError (bad input stays a client error)."""
    if isinstance(e, Err) and isinstance(e.value, _nn_errors.Error):
        code = e.value.code().name.lower().replace("_", "-")
        err = ModelError(e.value.data(), code)
        if code in ("invalid-argument", "too-large"):
            return BadRequest(e.value.data())
        if code == "not-found":
            return NotFound(e.value.data())
        return err
    return ModelError(str(e))


class Model:
    """A model the host runs natively, opened by name (a file or folder in
    the model directory, without extension) or from bytes."""

    _by_name = {}

    def __init__(self, graph, name):
        self._graph = graph
        self._context = None
        self.name = name

    @classmethod
    def by_name(cls, name):
        """The model ``name`` of the model directory (opened once)."""
        if name not in cls._by_name:
            try:
                cls._by_name[name] = cls(_graph.load_by_name(name), name)
            except Err as e:
                raise _model_error(e) from None
        return cls._by_name[name]

    @classmethod
    def load(cls, data, encoding="onnx", target="cpu"):
        """A model from its bytes (a list of bytes for multi-part formats);
        ``target`` is ``cpu`` or ``gpu``."""
        parts = [bytes(data)] if isinstance(data, (bytes, bytearray, memoryview)) else [bytes(p) for p in data]
        try:
            enc = _graph.GraphEncoding[str(encoding).upper()]
            tgt = _graph.ExecutionTarget[str(target).upper()]
        except KeyError as e:
            raise ValueError(f"unknown encoding or target: {e}") from None
        try:
            return cls(_graph.load(parts, enc, tgt), f"<{encoding} bytes>")
        except Err as e:
            raise _model_error(e) from None

    def run(self, inputs):
        """Runs the model on ``{name: Tensor}`` (or ``[(name, Tensor)]``);
        returns every output as ``{name: Tensor}``."""
        pairs = list(inputs.items()) if isinstance(inputs, dict) else list(inputs)
        for name, t in pairs:
            if not isinstance(t, Tensor):
                raise TypeError(f"input {name!r} is {type(t).__name__}, not sandscore.Tensor")
        try:
            if self._context is None:
                self._context = self._graph.init_execution_context()
            outputs = self._context.compute([(n, _to_wasi(t)) for n, t in pairs])
        except Err as e:
            raise _model_error(e) from None
        return {name: _from_wasi(t) for name, t in outputs}

    __call__ = run


class _Log:
    """Log lines through the host's logger, tagged with the request id."""

    def _emit(self, level, *args):
        _logging.log(level, " ".join(str(a) for a in args))

    def debug(self, *args):
        self._emit(_logging.Level.DEBUG, *args)

    def info(self, *args):
        self._emit(_logging.Level.INFO, *args)

    def warning(self, *args):
        self._emit(_logging.Level.WARN, *args)

    def error(self, *args):
        self._emit(_logging.Level.ERROR, *args)


log = _Log()
