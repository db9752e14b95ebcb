"""sandscore for scripts the Python runtime runs: the API of the
componentize-py guest's package (guest/python/sandscore), its models run by
the host's native runtimes through the door. ``Tensor``, ``Response``,
``Request``, ``rawhttp`` and the errors are the same code
(``sandscore._core``)."""

import sys

import sandscore_reactor as _door

from ._core import BadRequest, ModelError, NotFound, Request, Response, Tensor, rawhttp  # noqa: F401

__all__ = ["BadRequest", "NotFound", "ModelError", "Model", "Tensor", "Response", "rawhttp", "log"]


class Model:
    """A model the host runs natively, opened by name (a file or folder in
    the model directory, without extension)."""

    _by_name = {}

    def __init__(self, session, name):
        self._session = session
        self.name = name

    @classmethod
    def by_name(cls, name):
        """The model ``name`` of the model directory (opened once)."""
        if name not in cls._by_name:
            try:
                meta, _ = _door.call(_door.MODEL_OPEN, {"name": str(name)})
            except _door.HostError as e:
                raise NotFound(str(e)) from None
            cls._by_name[name] = cls(meta["session"], name)
        return cls._by_name[name]

    @classmethod
    def load(cls, data, encoding="onnx", target="cpu"):
        """Not in this runtime: a model is a file the operator placed in the
        model directory (``Model.by_name``)."""
        raise ModelError(
            "the Python runtime opens models of the model directory by name (Model.by_name), not from bytes",
            "unsupported-operation",
        )

    def run(self, inputs):
        """Runs the model on ``{name: Tensor}`` (or ``[(name, Tensor)]``);
        returns every output as ``{name: Tensor}``."""
        pairs = list(inputs.items()) if isinstance(inputs, dict) else list(inputs)
        header, blobs = [], []
        for name, t in pairs:
            if not isinstance(t, Tensor):
                raise TypeError(f"input {name!r} is {type(t).__name__}, not sandscore.Tensor")
            header.append({"name": name, "datatype": t.dtype, "shape": t.shape, "size": len(t.data)})
            blobs.append(t.data)
        try:
            meta, data = _door.call(_door.MODEL_RUN, {"session": self._session, "inputs": header, "outputs": None},
                                    b"".join(blobs))
        except _door.HostError as e:
            raise ModelError(str(e)) from None
        out, at = {}, 0
        for o in meta["outputs"]:
            out[o["name"]] = Tensor(data[at:at + o["size"]], o["shape"], o["datatype"])
            at += o["size"]
        return out

    __call__ = run


class _Log:
    """Log lines into the host's log, tagged with the request id."""

    def _emit(self, level, *args):
        print(f"{level}: " + " ".join(str(a) for a in args), file=sys.stderr, flush=True)

    def debug(self, *args):
        self._emit("DEBUG", *args)

    def info(self, *args):
        self._emit("INFO", *args)

    def warning(self, *args):
        self._emit("WARNING", *args)

    def error(self, *args):
        self._emit("ERROR", *args)


log = _Log()
