"""Runs an Azure ML score.py natively, as Azure ML's inference server does:
AZUREML_MODEL_DIR set, init() once, then run(body) for each line of stdin;
prints each answer as one JSON line. The tests' independent truth.

Usage: native.py SCRIPT MODEL_DIR < bodies
"""
import importlib.util
import json
import os
import sys

script, model_dir = sys.argv[1], sys.argv[2]
os.environ["AZUREML_MODEL_DIR"] = model_dir
spec = importlib.util.spec_from_file_location("score", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.init()
for line in sys.stdin:
    print(json.dumps(module.run(line.rstrip("\n"))), flush=True)
