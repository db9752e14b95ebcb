"""kserve 0.21's InferenceGRPCClient against a sandscore server.

Usage: kserve_grpc.py HOST:GRPC_PORT EXPECTED_JSON. Asserts the answer
against ONNX Runtime's own; the last line is "ok". Run by
cli/tests/clients.rs in the venv of deps/kserve-clients.lock.
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

url, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))["mlp"]
rows = np.array(expected["input"], dtype=np.float32)
want = np.array(expected["ort"]["probabilities"], dtype=np.float32)


async def main():
    client = InferenceGRPCClient(url, retries=0)
    assert await client.is_server_live()
    assert await client.is_model_ready("mlp")
    x = InferInput("input", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows)
    answer = await client.infer(InferRequest(model_name="mlp", infer_inputs=[x], request_id="k1"))
    got = next(o for o in answer.outputs if o.name == "probabilities").as_numpy()
    assert np.allclose(got, want, atol=1e-5), (got, want)
    print("raw in, raw out: equal to ONNX Runtime")
    await client.close()
    print("ok")


asyncio.run(main())
