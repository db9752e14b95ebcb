"""An XGBoost scoring script: the native Booster API and the scikit-learn
wrapper on the same model file, NumPy around them."""
import json
import os

import numpy as np
import xgboost as xgb


def init():
    global booster, classifier
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "iris_xgb.json")
    booster = xgb.Booster(model_file=path)
    classifier = xgb.XGBClassifier()
    classifier.load_model(path)


def run(raw_data):
    rows = np.array(json.loads(raw_data)["data"], dtype=np.float32)
    return {
        "booster": booster.predict(xgb.DMatrix(rows)).tolist(),
        "proba": classifier.predict_proba(rows).tolist(),
        "label": [int(c) for c in classifier.predict(rows)],
    }
