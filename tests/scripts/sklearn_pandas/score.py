"""A scikit-learn pipeline pickled with joblib, fed a pandas frame with an
engineered column: the model runs inside the sandbox, with its own
scikit-learn."""
import json
import os

import joblib
import pandas as pd

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "iris_pipeline.joblib"))


def run(raw_data):
    frame = pd.DataFrame(json.loads(raw_data)["data"], columns=COLUMNS)
    frame["petal_area"] = frame.petal_length * frame.petal_width
    return {
        "label": model.predict(frame).tolist(),
        "probabilities": model.predict_proba(frame).tolist(),
    }
