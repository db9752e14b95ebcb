"""A typical Azure ML scoring script for an ONNX model: onnxruntime for the
model, NumPy before and after. Unchanged from how it runs on Azure ML."""
import json
import os

import numpy as np
import onnxruntime


def init():
    global session, input_name
    path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "mlp.onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name


def run(raw_data):
    rows = np.array(json.loads(raw_data)["data"], dtype=np.float32)
    # Pre-processing: scale each row to unit maximum.
    rows = rows / np.maximum(np.abs(rows).max(axis=1, keepdims=True), 1e-6)
    (probabilities,) = session.run(["probabilities"], {input_name: rows})
    return {
        "probabilities": probabilities.tolist(),
        "class": np.argmax(probabilities, axis=1).tolist(),
        "outputs": [o.name for o in session.get_outputs()],
    }
