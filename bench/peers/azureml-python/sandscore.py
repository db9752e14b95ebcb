"""The part of sandscore's Python module that bench/guest-python/score.py
uses, over onnxruntime and numpy, so the Azure ML inference server runs the
same script natively (outside any sandbox) for the benchmark. Same session
options as everywhere in the benchmark: 1 intra-op thread, all graph
optimisations."""
import os

import numpy as np
import onnxruntime as ort

_TYPES = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8}


class Tensor:
    def __init__(self, array):
        self.array = array

    @classmethod
    def of(cls, values, dtype="FP32"):
        return cls(np.asarray(values, dtype=_TYPES[dtype]))

    def tolist(self):
        return self.array.tolist()


class Model:
    _by_name = {}

    def __init__(self, session):
        self._session = session

    @classmethod
    def by_name(cls, name):
        if name not in cls._by_name:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            path = os.path.join(os.environ["AZUREML_MODEL_DIR"], name + ".onnx")
            cls._by_name[name] = cls(ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]))
        return cls._by_name[name]

    def run(self, inputs):
        names = [o.name for o in self._session.get_outputs()]
        outs = self._session.run(None, {k: t.array for k, t in inputs.items()})
        return {n: Tensor(o) for n, o in zip(names, outs)}
