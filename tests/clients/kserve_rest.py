"""kserve 0.21's InferenceRESTClient (protocol v2) against a sandscore server.

Usage: kserve_rest.py URL EXPECTED_JSON [MODEL] (URL as http://host:port;
MODEL, the name the mlp is called by, defaults to mlp). Asserts
every answer against ONNX Runtime's own (the model generator's
expected.json); the last line is "ok". Run by cli/tests/clients.rs in the
venv of deps/kserve-clients.lock.
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

url, expected_path = sys.argv[1], sys.argv[2]
model = sys.argv[3] if len(sys.argv) > 3 else "mlp"
expected = json.load(open(expected_path))["mlp"]
rows = np.array(expected["input"], dtype=np.float32)
want = np.array(expected["ort"]["probabilities"], dtype=np.float32)


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    assert await client.is_server_ready(url)
    for binary in (True, False):
        x = InferInput("input", list(rows.shape), "FP32")
        x.set_data_from_numpy(rows, binary_data=binary)
        request = InferRequest(model_name=model, infer_inputs=[x], request_id=f"r{binary}")
        answer = await client.infer(url, request, model_name=model)
        got = next(o for o in answer.outputs if o.name == "probabilities").as_numpy()
        assert np.allclose(got, want, atol=1e-5), (binary, got, want)
        assert answer.id == f"r{binary}", answer.id
        print(f"binary={binary}: equal to ONNX Runtime")
    assert await client.is_model_ready(url, model)
    await client.close()
    print("ok")


asyncio.run(main())
