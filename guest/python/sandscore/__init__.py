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

import array
import json
import struct
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

# V2 datatype names → (wasi-nn type, array/struct format, bytes per element).
_TYPES = {
    "FP16": (_tensor.TensorType.FP16, "e", 2),
    "BF16": (_tensor.TensorType.BF16, None, 2),
    "FP32": (_tensor.TensorType.FP32, "f", 4),
    "FP64": (_tensor.TensorType.FP64, "d", 8),
    "UINT8": (_tensor.TensorType.U8, "B", 1),
    "INT32": (_tensor.TensorType.I32, "i", 4),
    "INT64": (_tensor.TensorType.I64, "q", 8),
}
_NAMES = {t: name for name, (t, _, _) in _TYPES.items()}
_ALIASES = {"U8": "UINT8", "I32": "INT32", "I64": "INT64", "FLOAT32": "FP32", "FLOAT64": "FP64"}


class BadRequest(Exception):
    """Raise from ``run`` for a request the script cannot score: HTTP 400."""


class NotFound(Exception):
    """Raise from ``run`` when what the request names does not exist: HTTP 404."""


class ModelError(Exception):
    """A model could not be loaded or run; ``code`` is wasi-nn's error code."""

    def __init__(self, message, code="runtime-error"):
        super().__init__(message)
        self.code = code


def _datatype(name):
    key = str(name).upper()
    key = _ALIASES.get(key, key)
    if key not in _TYPES:
        raise ValueError(f"unknown datatype {name!r}; use one of {', '.join(_TYPES)}")
    return key


def _flatten(values, shape, depth=0):
    """Nested lists/tuples → flat list, checking they are rectangular."""
    if depth == len(shape):
        return [values]
    if not isinstance(values, (list, tuple)) or len(values) != shape[depth]:
        raise BadRequest(f"values are not a rectangular array of shape {shape}")
    if depth == len(shape) - 1:
        return list(values)
    flat = []
    for v in values:
        flat.extend(_flatten(v, shape, depth + 1))
    return flat


def _shape_of(values):
    shape = []
    while isinstance(values, (list, tuple)):
        shape.append(len(values))
        if not values:
            break
        values = values[0]
    return shape


class Tensor:
    """A typed tensor: ``shape`` (outermost first), ``dtype`` (a V2 name such
    as ``"FP32"``) and ``data``, the row-major little-endian bytes."""

    __slots__ = ("shape", "dtype", "data")

    def __init__(self, data, shape, dtype="FP32"):
        self.dtype = _datatype(dtype)
        self.shape = [int(d) for d in shape]
        self.data = bytes(data)
        count = 1
        for d in self.shape:
            count *= d
        if count * _TYPES[self.dtype][2] != len(self.data):
            raise BadRequest(
                f"{len(self.data)} bytes do not fill a {self.dtype} tensor of shape {self.shape}"
            )

    @classmethod
    def of(cls, values, dtype="FP32", shape=None):
        """A tensor from nested lists (shape taken from the nesting), a flat
        sequence with ``shape``, or an ``array.array``."""
        dtype = _datatype(dtype)
        if shape is None:
            shape = [len(values)] if isinstance(values, array.array) else _shape_of(values)
            flat = list(values) if isinstance(values, array.array) else _flatten(values, shape)
        else:
            flat = list(values)
        fmt = _TYPES[dtype][1]
        try:
            if dtype == "BF16":
                packed = b"".join(struct.pack("<f", float(v))[2:] for v in flat)
            elif fmt == "e":
                packed = struct.pack(f"<{len(flat)}e", *flat)
            else:
                packed = array.array(fmt, flat).tobytes()
        except (TypeError, OverflowError, struct.error) as e:
            raise BadRequest(f"values do not fit {dtype}: {e}") from None
        return cls(packed, shape, dtype)

    def flat(self):
        """The elements as one flat list."""
        fmt = _TYPES[self.dtype][1]
        if self.dtype == "BF16":
            return [struct.unpack("<f", b"\0\0" + self.data[i:i + 2])[0] for i in range(0, len(self.data), 2)]
        if fmt == "e":
            return list(struct.unpack(f"<{len(self.data) // 2}e", self.data))
        return array.array(fmt, self.data).tolist()

    def tolist(self):
        """The elements nested as the shape says (a scalar for shape [])."""
        values = self.flat()
        for d in reversed(self.shape[1:]):
            values = [values[i:i + d] for i in range(0, len(values), d)] if d else []
        return values if self.shape else values[0]

    def __repr__(self):
        return f"Tensor(dtype={self.dtype}, shape={self.shape})"

    def _to_wasi(self):
        return _tensor.Tensor(self.shape, _TYPES[self.dtype][0], self.data)

    @classmethod
    def _from_wasi(cls, t):
        return cls(t.data(), t.dimensions(), _NAMES[t.ty()])


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
            outputs = self._context.compute([(n, t._to_wasi()) for n, t in pairs])
        except Err as e:
            raise _model_error(e) from None
        return {name: Tensor._from_wasi(t) for name, t in outputs}

    __call__ = run


class Response:
    """A full HTTP answer from ``run`` (Azure ML's AMLResponse): a body
    (bytes, str, or anything JSON-serialisable), a status and a content type."""

    def __init__(self, body, status=200, content_type=None):
        if isinstance(body, (bytes, bytearray)):
            self.body, default = bytes(body), "application/octet-stream"
        elif isinstance(body, str):
            self.body, default = body.encode(), "text/plain; charset=utf-8"
        else:
            self.body, default = json.dumps(body).encode(), "application/json"
        self.status = int(status)
        self.content_type = content_type or default


class Request:
    """What a ``@rawhttp`` ``run`` receives: the body, its content type and
    the headers (lower-case names)."""

    def __init__(self, body, content_type, headers):
        self.data = body
        self.content_type = content_type
        self.headers = dict(headers)

    def get_data(self, as_text=False):
        return self.data.decode("utf-8") if as_text else self.data

    def get_json(self):
        return json.loads(self.data)


def rawhttp(func):
    """Marks ``run`` as taking the whole request (``sandscore.Request``)
    instead of the body text, as Azure ML's ``@rawhttp`` does."""
    func._sandscore_rawhttp = True
    return func


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
