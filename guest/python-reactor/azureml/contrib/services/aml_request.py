"""``@rawhttp`` and the request a ``run`` marked with it receives."""

import json
from urllib.parse import parse_qs


def rawhttp(func):
    """Marks ``run`` as taking the whole request (an ``AMLRequest``) instead
    of the body text."""
    func._azureml_rawhttp = True
    return func


class _Headers(dict):
    """Request headers; lookups ignore case, as Werkzeug's do."""

    def __init__(self, pairs):
        super().__init__()
        for k, v in pairs:
            super().__setitem__(k.lower(), v)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __contains__(self, key):
        return super().__contains__(str(key).lower())


class AMLRequest:
    """The request as a Flask/Werkzeug ``Request`` shows it to a script:
    ``method``, ``headers``, ``args``, ``content_type``, ``data``,
    ``get_data()``, ``get_json()`` and ``json``."""

    def __init__(self, body, content_type, headers, method="POST", query=""):
        self.data = body
        self.content_type = content_type
        self.mimetype = content_type.split(";", 1)[0].strip()
        self.headers = _Headers(headers)
        self.method = method
        self.query_string = query.encode()
        self.args = {k: v[-1] for k, v in parse_qs(query).items()}
        self.path = "/score"
        self.full_path = f"/score?{query}"

    def get_data(self, as_text=False, **_):
        return self.data.decode("utf-8") if as_text else self.data

    def get_json(self, force=False, silent=False, **_):
        if not force and "json" not in self.mimetype:
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()
