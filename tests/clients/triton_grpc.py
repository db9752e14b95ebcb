"""tritonclient.grpc, with its default settings, against a sandscore server.

Usage: triton_grpc.py HOST:GRPC_PORT EXPECTED_JSON. Asserts every answer
against ONNX Runtime's own (expected.json); the last line is "ok". Run by
cli/tests/clients.rs in the venv of deps/triton-clients.lock.
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

url, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))["mlp"]
rows = np.array(expected["input"], dtype=np.float32)
want = np.array(expected["ort"]["probabilities"], dtype=np.float32)

client = grpcclient.InferenceServerClient(url)
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("mlp") and not client.is_model_ready("no-such-model")
assert client.get_model_metadata("mlp").inputs[0].name == "input"

x = grpcclient.InferInput("input", list(rows.shape), "FP32")
x.set_data_from_numpy(rows)
result = client.infer("mlp", [x], request_id="grpc-1")
got = result.as_numpy("probabilities")
assert np.allclose(got, want, atol=1e-5), (got, want)
assert result.get_response().id == "grpc-1"
print("raw in, raw out: equal to ONNX Runtime")

out = grpcclient.InferRequestedOutput("probabilities")
got = client.infer("mlp", [x], outputs=[out], model_version="1").as_numpy("probabilities")
assert np.allclose(got, want, atol=1e-5)
print("one output by name, version 1: equal")

# BYTES as raw contents (length-prefixed elements) both ways.
wide = json.load(open(expected_path))["wide_types"]
NP = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "UINT16": np.uint16,
      "UINT32": np.uint32, "UINT64": np.uint64}
inputs = []
for ty, values in wide["input"].items():
    arr = (np.array([v.encode() for v in values], dtype=np.object_) if ty == "BYTES"
           else np.array(values, dtype=NP[ty]))
    x_wide = grpcclient.InferInput(f"x_{ty.lower()}", list(arr.shape), ty)
    x_wide.set_data_from_numpy(arr)
    inputs.append(x_wide)
result = client.infer("wide_types", inputs)
for ty, want_values in wide["numpy"].items():
    got = result.as_numpy(f"y_{ty.lower()}").tolist()
    if ty == "BYTES":
        got = [g.decode() for g in got]
    assert got == want_values, (ty, got, want_values)
print("every type wasi-nn lacks, BYTES included: equal to NumPy")

stats = client.get_inference_statistics("mlp").model_stats[0]
assert stats.inference_stats.success.count >= 2, stats
config = client.get_model_config("mlp").config
assert config.input[0].name == "input", config
index = client.get_model_repository_index()
assert any(m.name == "mlp" and m.state == "READY" for m in index.models), index
print("statistics, config, repository index")

for call, code in [
    (lambda: client.infer("no-such-model", [x]), "StatusCode.NOT_FOUND"),
    (lambda: client.load_model("mlp"), "StatusCode.INVALID_ARGUMENT"),
]:
    try:
        call()
        raise AssertionError("no error")
    except InferenceServerException as e:
        assert e.status() == code, (e.status(), e.message())
bad = grpcclient.InferInput("input", [1, 3], "FP32")
bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
try:
    client.infer("mlp", [bad])
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as e:
    assert e.status() == "StatusCode.INVALID_ARGUMENT", (e.status(), e.message())
print("errors: NOT_FOUND, INVALID_ARGUMENT, INVALID_ARGUMENT")
print("ok")
