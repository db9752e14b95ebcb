"""Serves the scikit-learn pickles (``.pkl``, ``.joblib``) of the model
directory without a score.py, as the sklearn image does: each is unpickled
inside the sandbox with the bundled scikit-learn, so a pickle can do no more
than any guest code.

Requests are Azure ML's: ``{"data": rows}``, or the MLflow form
``{"input_data": {"columns": [...], "data": rows}}`` (a pandas frame for a
model fitted on one); with several pickles, ``"model": NAME`` picks one.
Answers: ``{"predictions": [...]}``, with ``"probabilities"`` for a
classifier.
"""
import json
import os

import joblib

from sandscore import BadRequest, NotFound

models = {}


def init():
    root = os.environ.get("AZUREML_MODEL_DIR", "")
    for name in sorted(os.listdir(root)):
        stem, _, ext = name.rpartition(".")
        if ext.lower() in ("pkl", "joblib", "pickle") and os.path.isfile(os.path.join(root, name)):
            models[stem] = joblib.load(os.path.join(root, name))
    if not models:
        raise FileNotFoundError(f"no .pkl or .joblib file in the model directory {root}")
    print(f"serving scikit-learn pickles: {', '.join(sorted(models))}")


def _rows(body):
    if not isinstance(body, dict):
        raise BadRequest('send {"data": rows} or {"input_data": {"columns": [...], "data": rows}}')
    if "data" in body:
        return body["data"]
    given = body.get("input_data")
    if isinstance(given, dict) and "data" in given:
        if given.get("columns") is not None:
            import pandas as pd

            return pd.DataFrame(given["data"], columns=given["columns"])
        return given["data"]
    if isinstance(given, list):
        return given
    raise BadRequest('no "data" in the request: send {"data": rows}')


def run(raw_data):
    body = json.loads(raw_data)
    name = body.get("model") if isinstance(body, dict) else None
    if name is None and len(models) > 1:
        raise BadRequest(f'several models here ({", ".join(sorted(models))}): name one with "model"')
    model = models.get(name) if name is not None else next(iter(models.values()))
    if model is None:
        raise NotFound(f"no model named {name!r}; the pickles here are {', '.join(sorted(models))}")
    rows = _rows(body)
    try:
        out = {"predictions": model.predict(rows).tolist()}
        if hasattr(model, "predict_proba"):
            out["probabilities"] = model.predict_proba(rows).tolist()
    except (ValueError, TypeError) as e:
        raise BadRequest(f"the model refused the rows: {e}") from e
    return out
