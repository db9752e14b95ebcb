#!/usr/bin/env python3
"""Builds the TensorFlow example model and TensorFlow's own predictions.

Usage: make_tensorflow.py OUT_DIR

Writes OUT_DIR/iris_tf/ (a SavedModel written by Keras' ExportArchive: a small
Keras network trained on iris-like data, exported with a serving_default signature
that takes `input` FP32 [batch, 4] and returns `probabilities` FP32
[batch, 3] and `logits`) and OUT_DIR/expected.json with sample inputs and
what the reloaded SavedModel's own signature returns for them. Fixed seeds.
Runs in the TensorFlow venv (`make tensorflow`), not the main one.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def iris():
    # Iris-like data (three Gaussian clusters around the species' means),
    # generated so that this venv needs TensorFlow alone.
    rng = np.random.default_rng(20261126)
    centers = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]], np.float32)
    x = np.concatenate([c + rng.normal(0, 0.3, (50, 4)).astype(np.float32) for c in centers])
    y = np.repeat(np.arange(3), 50)
    return x, y


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tf.keras.utils.set_random_seed(7)
    x, y = iris()
    model = tf.keras.Sequential([
        tf.keras.Input((4,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(3),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, verbose=0)
    path = os.path.join(out, "iris_tf")

    def serve(x):
        logits = model(x, training=False)
        return {"probabilities": tf.nn.softmax(logits), "logits": logits}

    # Keras' export for serving: the variables are tracked so that a
    # session-based loader (TF Serving, the C API) restores them.
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None, 4], tf.float32, name="input")],
    )
    archive.write_out(path)

    sample = x[::15]
    serving = tf.saved_model.load(path).signatures["serving_default"]
    got = serving(input=tf.constant(sample))
    expected = {
        "iris_tf": {
            "input": sample.tolist(),
            "probabilities": got["probabilities"].numpy().tolist(),
            "logits": got["logits"].numpy().tolist(),
        },
        "versions": {"tensorflow": tf.__version__},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"TensorFlow model written to {out}")


if __name__ == "__main__":
    main()
