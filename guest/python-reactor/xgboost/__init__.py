"""``xgboost`` for scripts in the sandbox: ``Booster``, ``DMatrix`` and the
scikit-learn-style classes' ``load_model``/``predict``/``predict_proba``,
run by the host's libxgboost.

A booster is a model file of the model directory that the server loaded
(``Booster(model_file=…)``, ``load_model(path)``); rows cross as raw float32
bytes (NaN is a missing value, as in XGBoost). Training, margins, leaf and
SHAP predictions are not served here: they raise ``NotImplementedError``.
"""

import numpy as np

import sandscore_reactor as _door

# The host's libxgboost, the one that predicts.
__version__ = _door.call(_door.INFO, {})[0].get("xgboost", "unknown")


def _rows(data, missing=np.nan):
    """Any array-like (NumPy, pandas, lists) as C-contiguous float32 rows."""
    to_numpy = getattr(data, "to_numpy", None)
    arr = np.asarray(to_numpy() if callable(to_numpy) else data, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"expected 2-D data, got {arr.ndim} dimensions")
    if missing is not None and not np.isnan(missing):
        arr = np.where(arr == np.float32(missing), np.float32(np.nan), arr)
    return np.ascontiguousarray(arr)


class DMatrix:
    """Rows for prediction (``label`` and weights are accepted and unused)."""

    def __init__(self, data, label=None, missing=np.nan, feature_names=None, **kwargs):
        self._rows = _rows(data, missing)
        self.feature_names = feature_names

    def num_row(self):
        return self._rows.shape[0]

    def num_col(self):
        return self._rows.shape[1]


class Booster:
    """A booster of the model directory, predicting with the host's
    libxgboost."""

    def __init__(self, params=None, cache=None, model_file=None):
        self._session = None
        self._features = None
        if model_file is not None:
            self.load_model(model_file)

    def load_model(self, fname):
        if isinstance(fname, (bytes, bytearray, memoryview)):
            raise ValueError(
                "in the sandbox a booster is a model file of the model directory (AZUREML_MODEL_DIR), not bytes"
            )
        meta, _ = _door.call(_door.MODEL_OPEN, {"path": str(fname)})
        self._session = meta["session"]
        shape = meta["inputs"][0]["shape"]
        self._features = shape[-1] if shape and shape[-1] >= 0 else None
        return self

    def num_features(self):
        return self._features

    def predict(self, data, output_margin=False, pred_leaf=False, pred_contribs=False, **kwargs):
        """What ``Booster.predict`` returns: probabilities, class ids or
        values, as the objective gives them."""
        if output_margin or pred_leaf or pred_contribs or kwargs.get("pred_interactions"):
            raise NotImplementedError("the sandbox serves plain predictions (no margins, leaves or contributions)")
        if self._session is None:
            raise ValueError("the booster has no model: call load_model(path) first")
        rows = data._rows if isinstance(data, DMatrix) else _rows(data)
        header = {
            "session": self._session,
            "inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape), "size": rows.nbytes}],
            "outputs": None,
        }
        meta, out = _door.call(_door.MODEL_RUN, header, rows.tobytes())
        o = meta["outputs"][0]
        return np.frombuffer(out[:o["size"]], dtype="<f4").reshape(o["shape"]).copy()

    inplace_predict = predict


class XGBModel:
    """The scikit-learn-style classes' shared part: ``load_model``,
    ``get_booster``."""

    def __init__(self, **params):
        self._Booster = None
        self.params = params

    def load_model(self, fname):
        self._Booster = Booster(model_file=fname)

    def get_booster(self):
        return self._Booster

    def _predict(self, X):
        if self._Booster is None:
            raise ValueError("the model has no booster: call load_model(path) first")
        return self._Booster.predict(X)


class XGBRegressor(XGBModel):
    """``predict`` gives the booster's values."""

    def predict(self, X, **kwargs):
        return self._predict(X)


class XGBClassifier(XGBModel):
    """``predict_proba`` gives one column per class; ``predict`` the most
    likely class (class ids 0…n-1)."""

    def predict_proba(self, X, **kwargs):
        p = self._predict(X)
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def predict(self, X, **kwargs):
        p = self._predict(X)
        if p.ndim == 1:
            return (p > 0.5).astype(np.int64)
        return np.argmax(p, axis=1)
