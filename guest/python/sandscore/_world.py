"""The scoring world's exports, mapped onto an Azure ML script's ``init()``
and ``run(raw_data)`` (and an optional ``infer(model, inputs)``). ``sandscore
build`` generates the component's entry module, which does
``WitWorld = world(<the user's script>)``."""

import json
import traceback

from componentize_py_types import Err
from wit_world.imports import types as _types

import sandscore

# Found by the runtime in the built component: it marks a Python module.
MARKER = "sandscore:python-guest"

_CODES = {
    sandscore.BadRequest: _types.ErrorCode.BAD_REQUEST,
    sandscore.NotFound: _types.ErrorCode.NOT_FOUND,
}


# componentize-py files the script's folder under /0/ (sandscore build
# passes it first) and this package under /1/.
_SCRIPT_DIR = "/0/"


def _where(exc):
    """The exception's last line and the innermost frame of the script's
    own files (else the innermost frame)."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if f.filename.startswith(_SCRIPT_DIR)] or frames[-1:]
    if not mine:
        return last
    frame = mine[-1]
    return f"{last} (at {frame.filename.rsplit('/', 1)[-1]} line {frame.lineno}, in {frame.name})"


def _traceback(exc):
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return text.replace(f'"{_SCRIPT_DIR}', '"')


def _failure(exc):
    """An exception from the script as the world's error: a client error for
    sandscore.BadRequest/NotFound and bad JSON, else internal with the
    traceback's last line (the whole traceback goes to the log)."""
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return Err(_types.Error(code, str(exc)))
    if isinstance(exc, json.JSONDecodeError):
        return Err(_types.Error(_types.ErrorCode.BAD_REQUEST, f"invalid JSON: {exc}"))
    sandscore.log.error(_traceback(exc))
    return Err(_types.Error(_types.ErrorCode.INTERNAL, _where(exc)))


def _response(result):
    if isinstance(result, sandscore.Response):
        return _types.Response(result.status, result.body, result.content_type)
    if isinstance(result, (bytes, bytearray)):
        return _types.Response(200, bytes(result), "application/octet-stream")
    return _types.Response(200, json.dumps(result).encode(), "application/json")


def world(user):
    """The ``WitWorld`` class for the script module ``user``."""
    user_init = getattr(user, "init", None)
    user_run = getattr(user, "run", None)
    user_infer = getattr(user, "infer", None)
    if not callable(user_run):
        raise AttributeError(f"{user.__name__}.py defines no run(raw_data) function")
    raw = getattr(user_run, "_sandscore_rawhttp", False)

    class WitWorld:
        def init(self):
            if user_init is None:
                return
            try:
                user_init()
            except BaseException as e:
                sandscore.log.error(_traceback(e))
                raise Err(_where(e)) from None

        def score(self, req):
            try:
                if raw:
                    arg = sandscore.Request(req.body, req.content_type, req.headers)
                else:
                    try:
                        arg = req.body.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise sandscore.BadRequest(f"body is not UTF-8: {e}") from None
                return _response(user_run(arg))
            except BaseException as e:
                raise _failure(e) from None

        def infer(self, model, inputs):
            if user_infer is None:
                raise Err(_types.Error(_types.ErrorCode.UNSUPPORTED, "the script defines no infer"))
            try:
                given = {t.name: sandscore.Tensor(t.data, t.shape, sandscore._NAMES[t.datatype]) for t in inputs}
                out = user_infer(model, given)
                return [
                    _types.NamedTensor(name, t.shape, sandscore._TYPES[t.dtype], t.data)
                    for name, t in out.items()
                ]
            except BaseException as e:
                raise _failure(e) from None

    return WitWorld
