#!/usr/bin/env python3
"""Builds the PyTorch example model and PyTorch's own predictions.

Usage: make_pytorch.py OUT_DIR

Writes OUT_DIR/iris_torch.pt (a TorchScript module saved by torch.jit.save:
a small network trained on iris-like data whose forward returns
(probabilities, logits)) and OUT_DIR/expected.json with sample inputs and
what torch.jit.load's module returns for them. Fixed seeds. Runs in the
PyTorch venv (`make pytorch`, which sets LD_LIBRARY_PATH so that the CUDA
build of torch imports without CUDA).
"""
import json
import os
import sys

import numpy as np

from iris_like import iris_like

# The PyPI torch is a CUDA build and its CUDA libraries are empty stubs here
# (scripts/libtorch.sh): bind symbols lazily, as nothing on the CPU path
# calls them.
sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
import torch  # noqa: E402


def iris():
    x, y = iris_like()
    return torch.from_numpy(x), torch.from_numpy(y)


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x):
        logits = self.net(x)
        return torch.softmax(logits, dim=1), logits


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    x, y = iris()
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x)[1], y)
        loss.backward()
        opt.step()
    model.eval()
    path = os.path.join(out, "iris_torch.pt")
    torch.jit.save(torch.jit.script(model), path)

    sample = x[::15]
    loaded = torch.jit.load(path)
    with torch.no_grad():
        probabilities, logits = loaded(sample)
    expected = {
        "iris_torch": {
            "input": sample.tolist(),
            "probabilities": probabilities.tolist(),
            "logits": logits.tolist(),
        },
        "versions": {"torch": torch.__version__},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"PyTorch model written to {out}")


if __name__ == "__main__":
    main()
