#!/usr/bin/env python3
"""Builds the TensorFlow and TensorFlow Lite example models and their own
predictions.

Usage: make_tensorflow.py TF_DIR TFLITE_DIR

Writes OUT_DIR/iris_tf/ (a SavedModel written by Keras' ExportArchive: a small
Keras network trained on iris-like data, exported with a serving_default signature
that takes `input` FP32 [batch, 4] and returns `probabilities` FP32
[batch, 3] and `logits`) and OUT_DIR/expected.json with sample inputs and
what the reloaded SavedModel's own signature returns for them, and
OUT_DIR/hostile/spin/ (a while loop of as many steps as its INT64 input
`steps` says, for the deadline test); then
TFLITE_DIR/iris_tflite.tflite (the same SavedModel through TFLiteConverter)
and TFLITE_DIR/expected.json with what LiteRT's own Python interpreter
returns for the same inputs. Fixed seeds. Two folders, because each image
reads only its own format.
Runs in the TensorFlow venv (`make tensorflow`), not the main one.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from iris_like import iris_like
import tensorflow as tf


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tf.keras.utils.set_random_seed(7)
    x, y = iris_like()
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

    # For the deadline test (cli/tests/tensorflow.rs): a while loop that
    # runs as many steps as its input says. Two levels down, so serving
    # `out` does not list it.
    class Spin(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1], tf.int64, name="steps")])
        def serve(self, steps):
            done = tf.while_loop(lambda i: i < steps[0], lambda i: i + 1,
                                 [tf.constant(0, tf.int64)])[0]
            return {"done": tf.reshape(done, [1])}

    spin = Spin()
    tf.saved_model.save(spin, os.path.join(out, "hostile", "spin"),
                        signatures={"serving_default": spin.serve})

    from ai_edge_litert.interpreter import Interpreter

    lite_out = sys.argv[2]
    os.makedirs(lite_out, exist_ok=True)
    lite = tf.lite.TFLiteConverter.from_saved_model(path).convert()
    with open(os.path.join(lite_out, "iris_tflite.tflite"), "wb") as f:
        f.write(lite)
    got = Interpreter(model_content=lite).get_signature_runner("serving_default")(input=sample)
    lite_expected = {
        "iris_tflite": {
            "input": sample.tolist(),
            "probabilities": got["probabilities"].tolist(),
            "logits": got["logits"].tolist(),
        },
        "versions": {"tensorflow": tf.__version__, "ai-edge-litert": "2.1.4"},
    }
    with open(os.path.join(lite_out, "expected.json"), "w") as f:
        json.dump(lite_expected, f, indent=1)
    print(f"TensorFlow Lite model written to {lite_out}")


if __name__ == "__main__":
    main()
