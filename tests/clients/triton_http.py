"""tritonclient.http, with its default settings, against a sandscore server.

Usage: triton_http.py URL EXPECTED_JSON
URL is host:port; EXPECTED_JSON is the model generator's expected.json (ONNX
Runtime's own answers for the mlp). Every check asserts; the last line is
"ok". Run by cli/tests/clients.rs in the venv of deps/triton-clients.lock.
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
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("mlp")
meta = client.get_server_metadata()
assert "binary_tensor_data" in meta["extensions"], meta
model = client.get_model_metadata("mlp")
assert model["inputs"][0]["name"] == "input", model
assert model["versions"] == ["1", "2"], model  # Triton's layout, both served
assert client.is_model_ready("mlp", "1") and client.is_model_ready("mlp", "2")

# Defaults: binary input, and (no outputs named) every output binary.
x = httpclient.InferInput("input", list(rows.shape), "FP32")
x.set_data_from_numpy(rows)
got = client.infer("mlp", [x]).as_numpy("probabilities")
assert np.allclose(got, want, atol=1e-5), (got, want)
print("binary in, binary out: equal to ONNX Runtime")

# JSON both ways, and one output asked for by name.
x = httpclient.InferInput("input", list(rows.shape), "FP32")
x.set_data_from_numpy(rows, binary_data=False)
out = httpclient.InferRequestedOutput("probabilities", binary_data=False)
for version in ("1", "2"):
    got = client.infer("mlp", [x], outputs=[out], model_version=version).as_numpy("probabilities")
    assert np.allclose(got, want, atol=1e-5)
print("JSON in, JSON out, versions 1 and 2: equal")

# Statistics count the requests just made; config and index describe it.
stats = client.get_inference_statistics("mlp")["model_stats"][0]
assert stats["name"] == "mlp" and stats["inference_stats"]["success"]["count"] >= 3, stats
config = client.get_model_config("mlp")
assert config["input"][0]["data_type"] == "TYPE_FP32", config
assert config["platform"] == "onnxruntime_onnx" and config["version_policy"] == {"all": {}}, config
index = client.get_model_repository_index()
assert {"name": "mlp", "version": "2", "state": "READY"} in index, index
print("statistics, config, repository index")

# Errors with the statuses Triton gives.
for call, status in [
    (lambda: client.infer("no-such-model", [x]), "404"),
    (lambda: client.get_model_metadata("mlp", model_version="7"), "404"),
]:
    try:
        call()
        raise AssertionError("no error")
    except InferenceServerException as e:
        assert e.status() == status, (e.status(), e.message())
bad = httpclient.InferInput("input", [1, 3], "FP32")
bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
try:
    client.infer("mlp", [bad])
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as e:
    assert e.status() == "400", (e.status(), e.message())
print("errors: 404, 404, 400")

# Every type wasi-nn lacks, BYTES included (NumPy object arrays of bytes),
# binary by default and as JSON: NumPy's and Python's own answers.
wide = json.load(open(expected_path))["wide_types"]
NP = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "UINT16": np.uint16,
      "UINT32": np.uint32, "UINT64": np.uint64}
for binary in (True, False):
    inputs = []
    for ty, values in wide["input"].items():
        arr = (np.array([v.encode() for v in values], dtype=np.object_) if ty == "BYTES"
               else np.array(values, dtype=NP[ty]))
        x = httpclient.InferInput(f"x_{ty.lower()}", list(arr.shape), ty)
        x.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(x)
    outputs = [httpclient.InferRequestedOutput(f"y_{ty.lower()}", binary_data=binary) for ty in wide["numpy"]]
    result = client.infer("wide_types", inputs, outputs=outputs)
    for ty, want_values in wide["numpy"].items():
        got = result.as_numpy(f"y_{ty.lower()}").tolist()
        if ty == "BYTES":
            got = [g.decode() if isinstance(g, bytes) else g for g in got]
        assert got == want_values, (binary, ty, got, want_values)
print("BOOL, INT8, INT16, UINT16, UINT32, UINT64, BYTES binary and JSON: equal to NumPy")
# Bytes that are not UTF-8 never reach ONNX Runtime's string tensors.
inputs[-1].set_data_from_numpy(np.array([b"\xff"] * len(wide["input"]["BYTES"]), dtype=np.object_))
try:
    client.infer("wide_types", inputs)
    raise AssertionError("bytes that are not UTF-8 were accepted")
except InferenceServerException as e:
    assert e.status() == "400" and "not UTF-8" in e.message(), (e.status(), e.message())
print("BYTES that are not UTF-8: 400, named")
print("ok")
