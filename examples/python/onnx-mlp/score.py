"""onnx-mlp as an Azure ML scoring script: rows of 64 features in, a class
and its probabilities out, through the `mlp` ONNX model (64 -> 32 -> 10,
softmax). The same request and answer as the Rust example
(examples/onnx-mlp):

    POST /score {"data": [[64 numbers], ...]}
    -> {"predictions": [{"class": k, "probabilities": [10 numbers]}, ...]}

Changed from an Azure ML script only where it reaches the model: through
sandscore.Model instead of onnxruntime.InferenceSession.
"""

import json

import sandscore

FEATURES = 64


def init():
    global model
    # AZUREML_MODEL_DIR's mlp.onnx, run by the host's ONNX Runtime.
    model = sandscore.Model.by_name("mlp")


def run(raw_data):
    rows = json.loads(raw_data).get("data")
    if not isinstance(rows, list) or not rows:
        raise sandscore.BadRequest("'data' must hold at least one row")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != FEATURES:
            n = len(row) if isinstance(row, list) else "no"
            raise sandscore.BadRequest(f"row {i} has {n} values; the model takes {FEATURES}")
    out = model.run({"input": sandscore.Tensor.of(rows)})
    predictions = []
    for p in out["probabilities"].tolist():
        predictions.append({"class": max(range(len(p)), key=p.__getitem__), "probabilities": p})
    return {"predictions": predictions}
