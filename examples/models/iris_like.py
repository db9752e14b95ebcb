"""Iris-like training data shared by the generators that run in venvs
without scikit-learn (TensorFlow, PyTorch): three Gaussian clusters around
the iris species' means, fixed seed."""
import numpy as np


def iris_like():
    rng = np.random.default_rng(20261126)
    centers = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]], np.float32)
    x = np.concatenate([c + rng.normal(0, 0.3, (50, 4)).astype(np.float32) for c in centers])
    y = np.repeat(np.arange(3), 50)
    return x, y
