"""``onnxruntime`` for scripts in the sandbox: the same API, run by the
host's native ONNX Runtime.

``InferenceSession(path)`` opens a model file of the model directory
through the host door (the host serves it with the session options it
chose; the script's options and providers are accepted and ignored), and
``run`` sends the feeds as raw tensor bytes and returns NumPy arrays.
Models cannot be loaded from bytes: a model is a file the operator placed.
"""

import numpy as np

import sandscore_reactor as _door

# The host's ONNX Runtime, the one that runs the models.
__version__ = _door.call(_door.INFO, {})[0].get("onnxruntime", "unknown")

# V2 datatype names and NumPy dtypes, both ways.
_DTYPES = {
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(t): name for name, t in _DTYPES.items()}
# ONNX's type names, as NodeArg.type reports them.
_ONNX = {
    "FP16": "tensor(float16)", "FP32": "tensor(float)", "FP64": "tensor(double)", "BF16": "tensor(bfloat16)",
    "UINT8": "tensor(uint8)", "UINT16": "tensor(uint16)", "UINT32": "tensor(uint32)", "UINT64": "tensor(uint64)",
    "INT8": "tensor(int8)", "INT16": "tensor(int16)", "INT32": "tensor(int32)", "INT64": "tensor(int64)",
    "BOOL": "tensor(bool)", "BYTES": "tensor(string)",
}


class GraphOptimizationLevel:
    """Accepted for compatibility; the host chooses the optimisation level."""

    ORT_DISABLE_ALL, ORT_ENABLE_BASIC, ORT_ENABLE_EXTENDED, ORT_ENABLE_ALL = 0, 1, 2, 99


class ExecutionMode:
    """Accepted for compatibility."""

    ORT_SEQUENTIAL, ORT_PARALLEL = 0, 1


class SessionOptions:
    """Accepted for compatibility: any attribute may be set; the host's
    session options apply."""


class RunOptions:
    """Accepted for compatibility; the request's deadline applies."""


class NodeArg:
    """A model input or output: ``name``, ``type`` (``tensor(float)``…)
    and ``shape`` (a dimension of any size as a string, as ONNX names it)."""

    def __init__(self, info):
        self.name = info["name"]
        self.type = _ONNX.get(info["datatype"], info.get("native_type", info["datatype"]))
        self.shape = [d if d >= 0 else f"d{i}" for i, d in enumerate(info["shape"])]

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


def get_available_providers():
    return ["CPUExecutionProvider"]


def get_device():
    return "CPU"


class InferenceSession:
    """A model of the model directory, run by the host's ONNX Runtime."""

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs):
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            raise ValueError(
                "in the sandbox an InferenceSession opens a model file of the model directory "
                "(AZUREML_MODEL_DIR), not bytes"
            )
        meta, _ = _door.call(_door.MODEL_OPEN, {"path": str(path_or_bytes)})
        self._id = meta["session"]
        self._inputs = [NodeArg(i) for i in meta["inputs"]]
        self._outputs = [NodeArg(o) for o in meta["outputs"]]
        self._input_types = {i["name"]: i["datatype"] for i in meta["inputs"]}

    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def set_providers(self, providers=None, provider_options=None):
        pass

    def run(self, output_names, input_feed, run_options=None):
        """Runs the model on ``input_feed`` (name → array-like); returns the
        outputs named (all when ``None``) as NumPy arrays, in that order."""
        inputs, blobs = [], []
        for name, value in input_feed.items():
            want = self._input_types.get(name)
            arr = np.asarray(value)
            if want == "BYTES" or arr.dtype.kind in "OUS":
                flat = [v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist()]
                data = b"".join(len(v).to_bytes(4, "little") + v for v in flat)
                datatype = "BYTES"
            else:
                datatype = _NAMES.get(arr.dtype.newbyteorder("="))
                if datatype is None:
                    raise TypeError(f"input '{name}': NumPy dtype {arr.dtype} has no ONNX tensor type here")
                data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            inputs.append({"name": name, "datatype": datatype, "shape": list(arr.shape), "size": len(data)})
            blobs.append(data)
        header = {"session": self._id, "inputs": inputs,
                  "outputs": None if output_names is None else list(output_names)}
        meta, data = _door.call(_door.MODEL_RUN, header, b"".join(blobs))
        out, at = [], 0
        for o in meta["outputs"]:
            chunk = data[at:at + o["size"]]
            at += o["size"]
            if o["datatype"] == "BYTES":
                items, i = [], 0
                while i < len(chunk):
                    n = int.from_bytes(chunk[i:i + 4], "little")
                    items.append(bytes(chunk[i + 4:i + 4 + n]).decode("utf-8", "replace"))
                    i += 4 + n
                out.append(np.array(items, dtype=object).reshape(o["shape"]))
            elif o["datatype"] not in _DTYPES:
                raise TypeError(f"output '{o['name']}' is {o['datatype']}, which has no NumPy type")
            else:
                dtype = np.dtype(_DTYPES[o["datatype"]]).newbyteorder("<")
                out.append(np.frombuffer(chunk, dtype=dtype).reshape(o["shape"]).copy())
        return out
