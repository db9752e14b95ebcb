#!/usr/bin/env python3
"""Benchmark models (fixed seed): the large MLP, float32 [N,1024] -> four
1024x1024 layers -> [N,1024]. The small MLP and the iris pipeline are the
examples' (examples/models/make_models.py); `make bench` copies them in.

Usage: make_models.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1024)
    nodes, inits, prev = [], [], "input"
    for i in range(4):
        w = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
        b = (rng.standard_normal(1024) / 32).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        last = "output" if i == 3 else f"h{i}"
        nodes.append(helper.make_node("Relu" if i < 3 else "Identity", [f"a{i}"], [last]))
        prev = last
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1024])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1024])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "large.onnx"))
    print(f"large.onnx written to {out}")


if __name__ == "__main__":
    main()
