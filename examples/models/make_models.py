#!/usr/bin/env python3
"""Builds the example models and the frameworks' own predictions for the tests.

Usage: make_models.py OUT_DIR

Writes OUT_DIR/{mlp,iris,embed,types,wide_types}.onnx, OUT_DIR/iris_pipeline.joblib
and OUT_DIR/expected.json. Every
model is made with a fixed seed, so reruns give the same files. expected.json
holds, per model, sample inputs and the outputs of onnxruntime's own Python API
(and, for iris, scikit-learn's predict/predict_proba; for mlp and embed, a
NumPy forward pass), which the tests compare with what sandscore serves.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 9


def save(model, path):
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, path)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_mlp(out, rng):
    w1 = rng.standard_normal((64, 32)).astype(np.float32) * 0.2
    b1 = rng.standard_normal(32).astype(np.float32) * 0.1
    w2 = rng.standard_normal((32, 10)).astype(np.float32) * 0.2
    b2 = rng.standard_normal(10).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
    )
    path = os.path.join(out, "mlp.onnx")
    save(helper.make_model(graph, opset_imports=OPSET), path)
    x = rng.standard_normal((5, 64)).astype(np.float32)
    numpy_probs = softmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2)
    session = ort.InferenceSession(path)
    (ort_probs,) = session.run(None, {"input": x})
    assert np.allclose(numpy_probs, ort_probs, atol=1e-5)
    (zeros_probs,) = session.run(None, {"input": np.zeros((1, 64), dtype=np.float32)})
    return {
        "input": x.tolist(),
        "ort": {"probabilities": ort_probs.tolist(), "zeros_probabilities": zeros_probs.tolist()},
        "numpy": {"probabilities": numpy_probs.tolist(), "class": numpy_probs.argmax(axis=1).tolist()},
    }


def make_iris(out):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_iris()
    x, y = data.data.astype(np.float32), data.target
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)
    model = convert_sklearn(
        pipe,
        initial_types=[("input", FloatTensorType([None, 4]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path = os.path.join(out, "iris.onnx")
    save(model, path)
    sample = x[::15]
    labels, zipmap = ort.InferenceSession(path).run(None, {"input": sample})
    ort_probs = [[row[k] for k in sorted(row)] for row in zipmap]
    return {
        "input": sample.tolist(),
        "sklearn": {
            "label": pipe.predict(sample).tolist(),
            "probabilities": pipe.predict_proba(sample).tolist(),
        },
        "ort": {"output_label": labels.tolist(), "output_probability": ort_probs},
    }


def make_iris_pickle(out):
    """A scikit-learn pipeline fitted on a pandas frame with an engineered
    column, pickled with joblib: what an Azure ML score.py loads with
    joblib.load. The sandbox reads it with its own scikit-learn; the tests
    run the same script natively for the expected answers."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame["petal_area"] = frame.petal_length * frame.petal_width
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(frame, data.target)
    joblib.dump(pipe, os.path.join(out, "iris_pipeline.joblib"))


def make_embed(out, rng):
    table = rng.standard_normal((100, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["vectors"], axis=0),
        helper.make_node("ReduceMean", ["vectors"], ["embedding"], axes=[1], keepdims=0),
        helper.make_node("ArgMax", ["embedding"], ["top_dimension"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "embed",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("top_dimension", TensorProto.INT64, ["batch"]),
        ],
        [numpy_helper.from_array(table, "table")],
    )
    path = os.path.join(out, "embed.onnx")
    save(helper.make_model(graph, opset_imports=OPSET), path)
    ids = rng.integers(0, 100, size=(3, 6), dtype=np.int64)
    emb, top = ort.InferenceSession(path).run(None, {"input_ids": ids})
    numpy_emb = table[ids].mean(axis=1)
    assert np.allclose(numpy_emb, emb, atol=1e-5)
    return {
        "input": ids.tolist(),
        "ort": {"embedding": emb.tolist(), "top_dimension": top.tolist()},
        "numpy": {"embedding": numpy_emb.tolist(), "top_dimension": numpy_emb.argmax(axis=1).tolist()},
    }


TYPES = {
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BF16": TensorProto.BFLOAT16,
    "UINT8": TensorProto.UINT8,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
}


def make_types(out):
    """Identity per wasi-nn tensor type: what goes in must come out."""
    nodes, inputs, outputs = [], [], []
    for name, proto in TYPES.items():
        lower = name.lower()
        nodes.append(helper.make_node("Identity", [f"x_{lower}"], [f"y_{lower}"]))
        inputs.append(helper.make_tensor_value_info(f"x_{lower}", proto, ["n"]))
        outputs.append(helper.make_tensor_value_info(f"y_{lower}", proto, ["n"]))
    graph = helper.make_graph(nodes, "types", inputs, outputs)
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "types.onnx"))
    values = {"FP16": [0.5, -2.0, 1024.0], "FP32": [0.25, -1.5, 3.0e6], "FP64": [1e-300, -2.5, 1e300],
              "BF16": [1.0, -0.5, 256.0], "UINT8": [0, 7, 255], "INT32": [-2147483648, 0, 2147483647],
              "INT64": [-9007199254740991, 0, 9007199254740991]}
    return {"input": values}


WIDE = {"BOOL": (TensorProto.BOOL, np.bool_), "INT8": (TensorProto.INT8, np.int8),
        "INT16": (TensorProto.INT16, np.int16), "UINT16": (TensorProto.UINT16, np.uint16),
        "UINT32": (TensorProto.UINT32, np.uint32), "UINT64": (TensorProto.UINT64, np.uint64)}


# BYTES: a LabelEncoder from words to their upper case (locale-free, unlike
# StringNormalizer), unknown words to a default.
WORDS = ["cat", "naïve", "", "Zoë 42"]


def make_wide_types(out):
    """The V2 types wasi-nn does not carry, for models served without a
    module: BOOL through Not, each integer type through Add(x, 1), BYTES
    through a string LabelEncoder, with NumPy's (and Python's) own answers."""
    nodes, inputs, outputs, inits = [], [], [], []
    values = {"BOOL": [True, False, True], "INT8": [-128, 0, 126], "INT16": [-32768, 0, 32766],
              "UINT16": [0, 7, 65534], "UINT32": [0, 7, 4294967294],
              "UINT64": [0, 7, 9007199254740990]}
    expected = {}
    for name, (proto, dtype) in WIDE.items():
        lower = name.lower()
        x = np.array(values[name], dtype=dtype)
        inputs.append(helper.make_tensor_value_info(f"x_{lower}", proto, ["n"]))
        outputs.append(helper.make_tensor_value_info(f"y_{lower}", proto, ["n"]))
        if name == "BOOL":
            nodes.append(helper.make_node("Not", [f"x_{lower}"], [f"y_{lower}"]))
            y = np.logical_not(x)
        else:
            inits.append(numpy_helper.from_array(np.array([1], dtype=dtype), f"one_{lower}"))
            nodes.append(helper.make_node("Add", [f"x_{lower}", f"one_{lower}"], [f"y_{lower}"]))
            y = x + dtype(1)
        expected[name] = y.tolist()
    inputs.append(helper.make_tensor_value_info("x_bytes", TensorProto.STRING, ["n"]))
    outputs.append(helper.make_tensor_value_info("y_bytes", TensorProto.STRING, ["n"]))
    table = {w: w.upper() or "(empty)" for w in WORDS}
    nodes.append(helper.make_node("LabelEncoder", ["x_bytes"], ["y_bytes"], domain="ai.onnx.ml",
                                  keys_strings=list(table), values_strings=list(table.values()),
                                  default_string="(unknown)"))
    values["BYTES"] = WORDS + ["dog"]
    expected["BYTES"] = [table.get(w, "(unknown)") for w in values["BYTES"]]
    graph = helper.make_graph(nodes, "wide_types", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("ai.onnx.ml", 3)])
    save(model, os.path.join(out, "wide_types.onnx"))
    got = ort.InferenceSession(os.path.join(out, "wide_types.onnx")).run(
        ["y_bytes"], {f"x_{n.lower()}": np.array(v, dtype=object if n == "BYTES" else WIDE[n][1])
                      for n, v in values.items()})[0]
    assert got.tolist() == expected["BYTES"], (got, expected["BYTES"])
    return {"input": values, "numpy": expected}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261126)
    make_iris_pickle(out)
    expected = {
        "mlp": make_mlp(out, rng),
        "iris": make_iris(out),
        "embed": make_embed(out, rng),
        "types": make_types(out),
        "wide_types": make_wide_types(out),
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"models written to {out}")


if __name__ == "__main__":
    main()
