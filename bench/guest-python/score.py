"""The benchmark's work as an Azure ML scoring script (what bench/guest does
in Rust and bench/peers/azureml/score.py with onnxruntime): JSON rows in,
the model's first output row by row out. `make bench` builds it with
`sandscore build`, and the Azure ML server runs the same file natively with
bench/peers/azureml-python/sandscore.py standing in for the sandbox's
module."""

import json

import sandscore


def init():
    # Models open on first use (Model.by_name keeps them), so one script
    # serves whichever of the benchmark's models the server has.
    pass


def run(raw_data):
    req = json.loads(raw_data)
    model = sandscore.Model.by_name(req["model"])
    out = model.run({req["input"]: sandscore.Tensor.of(req["data"])})
    return {"outputs": next(iter(out.values())).tolist()}
