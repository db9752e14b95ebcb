"""What every sandscore Python guest shares, whatever runs it: the typed
``Tensor``, the errors a script raises for a client's fault, and the full
``Response``/``Request`` of ``@rawhttp``. Pure Python and the standard
library only."""

import array
import json
import struct

# V2 datatype names → (array/struct format, bytes per element).
_FORMATS = {
    "FP16": ("e", 2),
    "BF16": (None, 2),
    "FP32": ("f", 4),
    "FP64": ("d", 8),
    "UINT8": ("B", 1),
    "INT32": ("i", 4),
    "INT64": ("q", 8),
}
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
    if key not in _FORMATS:
        raise ValueError(f"unknown datatype {name!r}; use one of {', '.join(_FORMATS)}")
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
        if count * _FORMATS[self.dtype][1] != len(self.data):
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
        fmt = _FORMATS[dtype][0]
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
        fmt = _FORMATS[self.dtype][0]
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
