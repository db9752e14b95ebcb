"""Fits a small classifier natively, pickles it with joblib into the folder
given, and prints its rows with the native predictions and probabilities
as one JSON object: the truth for the tests of served pickles.

Usage: make_pickle.py FOLDER
"""
import json
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(7)
X = rng.normal(size=(60, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
model = LogisticRegression(max_iter=500).fit(X, y)
joblib.dump(model, f"{sys.argv[1]}/clf.joblib")
rows = X[:5].tolist()
print(json.dumps({
    "rows": rows,
    "predictions": model.predict(rows).tolist(),
    "probabilities": model.predict_proba(rows).tolist(),
}))
