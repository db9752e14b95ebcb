"""tritonclient.http's model repository calls against a server in explicit
model control mode (`--model-control-mode explicit --load-model mlp`) whose
repository got a model (`late`, a copy of the mlp) after it started.

Usage: triton_repository.py HOST:PORT EXPECTED_JSON. The last line is "ok".
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))["mlp"]
rows = np.array(expected["input"], dtype=np.float32)
want = np.array(expected["ort"]["probabilities"], dtype=np.float32)
client = httpclient.InferenceServerClient(url)


def state(name):
    return [m for m in client.get_model_repository_index() if m["name"] == name]


def infer(name):
    x = httpclient.InferInput("input", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows)
    return client.infer(name, [x]).as_numpy("probabilities")


assert client.is_model_ready("mlp") and not client.is_model_ready("late")
assert state("late") and state("late")[0]["state"] == "UNAVAILABLE", state("late")
client.load_model("late")
assert client.is_model_ready("late") and state("late")[0]["state"] == "READY"
assert np.allclose(infer("late"), want, atol=1e-5)
print("a model copied in after start: loaded, equal to ONNX Runtime")

client.unload_model("mlp")
assert not client.is_model_ready("mlp")
assert state("mlp")[0]["state"] == "UNAVAILABLE"
try:
    infer("mlp")
    raise AssertionError("an unloaded model answered")
except InferenceServerException as e:
    assert e.status() == "404", (e.status(), e.message())
client.load_model("mlp")
assert np.allclose(infer("mlp"), want, atol=1e-5)
print("unloaded: 404; loaded again: equal")

try:
    client.load_model("no-such-model")
    raise AssertionError("a missing model loaded")
except InferenceServerException as e:
    assert e.status() == "400", (e.status(), e.message())
print("ok")
