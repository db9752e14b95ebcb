"""``AMLResponse``: a full HTTP answer from ``run``."""

import json


class AMLResponse:
    """A body with a status (and headers): ``json_str=True`` serializes the
    message as JSON; a str is sent as UTF-8 text, bytes as they are."""

    def __init__(self, message, status_code, response_headers=None, json_str=False):
        headers = {k.lower(): v for k, v in (response_headers or {}).items()}
        if json_str:
            body, content_type = json.dumps(message).encode(), "application/json"
        elif isinstance(message, (bytes, bytearray)):
            body, content_type = bytes(message), "application/octet-stream"
        elif isinstance(message, str):
            body, content_type = message.encode(), "text/html; charset=utf-8"
        else:
            body, content_type = json.dumps(message).encode(), "application/json"
        self.body = body
        self.status_code = int(status_code)
        self.headers = headers
        self.content_type = headers.get("content-type", content_type)
