#!/usr/bin/env python3
"""The GPU check's large models for TensorFlow and PyTorch.

Usage: gpu-models.py tensorflow|pytorch OUT_DIR

Writes the same shape of network as bench/make_models.py's large.onnx
(1024 -> 4 x 1024x1024 ReLU -> 1024, fixed seed): OUT_DIR/large_tf/ (a
SavedModel, input `input`, output `output`) or OUT_DIR/large_torch.pt (a
TorchScript module). Run with the framework's venv (`make tensorflow`,
`make pytorch`); the GPU check compares each framework's GPU answers with
its own CPU answers, so the weights need only be fixed.
"""
import os
import sys


def tensorflow(out):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(7)
    weights = [tf.constant(rng.normal(0, 1 / 32, (1024, 1024)).astype(np.float32)) for _ in range(5)]

    class Large(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1024], tf.float32, name="input")])
        def serve(self, x):
            for w in weights[:-1]:
                x = tf.nn.relu(tf.matmul(x, w))
            return {"output": tf.matmul(x, weights[-1])}

    m = Large()
    tf.saved_model.save(m, os.path.join(out, "large_tf"), signatures={"serving_default": m.serve})


def pytorch(out):
    sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
    import torch

    torch.manual_seed(7)
    layers = []
    for _ in range(4):
        layers += [torch.nn.Linear(1024, 1024, bias=False), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(1024, 1024, bias=False)).eval()
    torch.jit.save(torch.jit.script(model), os.path.join(out, "large_torch.pt"))


if __name__ == "__main__":
    framework, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    {"tensorflow": tensorflow, "pytorch": pytorch}[framework](out)
