#!/usr/bin/env python3
"""Builds the XGBoost example models and XGBoost's own predictions.

Usage: make_xgboost.py OUT_DIR

Writes OUT_DIR/iris_xgb.json (multi:softprob, saved as JSON),
OUT_DIR/cancer_xgb.ubj (binary:logistic, saved as UBJSON) and
OUT_DIR/expected.json with sample inputs and what xgboost's Python API
predicts for them (Booster.predict, and the scikit-learn wrapper's
predict/predict_proba), which the tests compare with what sandscore serves.
Fixed seeds: reruns give the same predictions. A folder of its own, because
only the XGBoost image reads these.
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_iris


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target
    clf = xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, random_state=7, n_jobs=1)
    clf.fit(x, y)
    iris_path = os.path.join(out, "iris_xgb.json")
    clf.save_model(iris_path)
    iris_sample = x[::15].copy()
    iris_sample[1, 2] = np.nan  # XGBoost's missing value
    iris_booster = xgb.Booster(model_file=iris_path)

    cancer = load_breast_cancer()
    cx, cy = cancer.data.astype(np.float32), cancer.target
    bin_clf = xgb.XGBClassifier(n_estimators=30, max_depth=4, random_state=7, n_jobs=1)
    bin_clf.fit(cx, cy)
    cancer_path = os.path.join(out, "cancer_xgb.ubj")
    bin_clf.save_model(cancer_path)
    cancer_sample = cx[::57]
    cancer_booster = xgb.Booster(model_file=cancer_path)

    def listed(a):
        return [[None if np.isnan(v) else float(v) for v in row] for row in a]

    expected = {
        "iris_xgb": {
            "input": listed(iris_sample),
            "booster_predict": iris_booster.predict(xgb.DMatrix(iris_sample)).tolist(),
            "predict_proba": clf.predict_proba(iris_sample).tolist(),
            "predict": clf.predict(iris_sample).tolist(),
        },
        "cancer_xgb": {
            "input": cancer_sample.tolist(),
            "booster_predict": cancer_booster.predict(xgb.DMatrix(cancer_sample)).tolist(),
            "predict_proba": bin_clf.predict_proba(cancer_sample).tolist(),
            "features": int(cx.shape[1]),
        },
        "versions": {"xgboost": xgb.__version__},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"XGBoost models written to {out}")


if __name__ == "__main__":
    main()
