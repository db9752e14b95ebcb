"""iris-sklearn as an Azure ML scoring script: a scikit-learn pipeline
(StandardScaler + LogisticRegression) exported with skl2onnx as `iris`.
The same request and answer as the Rust example (examples/iris-sklearn):

    POST /score {"data": [[4 measurements], ...]}
    -> {"predictions": [{"label": k, "probabilities": [3 numbers]}, ...]}
"""

import json

import sandscore


def init():
    global model
    model = sandscore.Model.by_name("iris")


def run(raw_data):
    rows = json.loads(raw_data).get("data")
    if not isinstance(rows, list) or not rows:
        raise sandscore.BadRequest("'data' must hold at least one row of 4 measurements")
    if any(not isinstance(r, list) or len(r) != 4 for r in rows):
        raise sandscore.BadRequest("every row must hold 4 measurements")
    out = model.run({"input": sandscore.Tensor.of(rows)})
    labels = out["output_label"].flat()
    probabilities = out["output_probability"].tolist()
    return {
        "predictions": [
            {"label": label, "probabilities": p} for label, p in zip(labels, probabilities)
        ]
    }
