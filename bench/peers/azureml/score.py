"""The Azure ML inference server's side of the benchmark: the same work as
bench/guest (JSON rows in, the model's first output row by row out), with
onnxruntime in Python. The model is $AZUREML_MODEL_DIR/$BENCH_MODEL.onnx."""
import json
import os

import numpy as np
import onnxruntime as ort

session = None


def init():
    global session
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], os.environ["BENCH_MODEL"] + ".onnx")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run(raw_data):
    req = json.loads(raw_data)
    x = np.asarray(req["data"], dtype=np.float32)
    (out,) = session.run(None, {req["input"]: x})[:1]
    return {"outputs": out.tolist()}
