"""Runs an Azure ML ``score.py`` unchanged inside the sandbox's CPython.

The host (runtime/src/reactor) starts one interpreter per worker and drives
it in turns: the first turn imports this module, loads the script and runs
its ``init()``; every request is one more turn, ``step()``, which fetches the
request through the host door, calls the script's ``run``, and hands the
answer back the same way. Nothing else crosses: the door is the only way
out, and it carries the request, the answer, and model calls
(``onnxruntime.InferenceSession``) to the host's native runtimes.

Door frames: one op byte, a little-endian u32 header length, a JSON header,
then raw bytes (a body, tensor data). Answers: a status byte (0 ok), the
same length, a JSON header and raw bytes.
"""

import importlib.util
import json
import struct
import sys
import traceback

import _host

from sandscore._core import BadRequest, NotFound

REQUEST, RESPOND, FAIL, MODEL_OPEN, MODEL_RUN, INFO = 1, 2, 3, 4, 5, 6


class HostError(Exception):
    """The host refused a door call; the message says why."""


def call(op, header, payload=b""):
    """One door call: the answer's JSON header and its raw bytes."""
    head = json.dumps(header, separators=(",", ":")).encode()
    answer = _host.call(b"".join((bytes((op,)), struct.pack("<I", len(head)), head, payload)))
    (n,) = struct.unpack_from("<I", answer, 1)
    meta = json.loads(answer[5:5 + n])
    if answer[0] != 0:
        raise HostError(meta.get("message", "the host refused the call"))
    return meta, memoryview(answer)[5 + n:]


_script = None
_script_path = ""
_run = None
_raw = False


def _where(exc):
    """The exception's last line and the innermost frame of the script's
    own file (else the innermost frame)."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if f.filename == _script_path] or frames[-1:]
    if not mine:
        return last
    f = mine[-1]
    return f"{last} (at {f.filename.rsplit('/', 1)[-1]} line {f.lineno}, in {f.name})"


# What a missing module's error adds: where packages come from here.
_PACKAGES_HINT = (
    "; this runtime bundles numpy, pandas, scipy, scikit-learn, joblib, statsmodels, matplotlib and ~40 more, "
    "and onnxruntime, xgboost and azureml.contrib.services run by the host: list other pure-Python packages "
    "in a requirements.txt beside the script (name==version), or put them beside it or in a folder named by "
    "AZUREML_EXTRA_PYTHON_LIB_PATH"
)


def _fail(kind, exc):
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = _where(exc)
    if isinstance(exc, ModuleNotFoundError):
        message += _PACKAGES_HINT
    call(FAIL, {"kind": kind, "message": message})


def load(path):
    """Imports the script at ``path`` as the module ``score`` and runs its
    ``init()``; a failure is reported to the host with the script's line."""
    global _script, _script_path, _run, _raw
    _script_path = path
    try:
        spec = importlib.util.spec_from_file_location("score", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        _run = getattr(module, "run", None)
        if not callable(_run):
            raise AttributeError(f"{path.rsplit('/', 1)[-1]} defines no run(raw_data) function")
        _raw = getattr(_run, "_azureml_rawhttp", False) or getattr(_run, "_sandscore_rawhttp", False)
        _script = module
        init = getattr(module, "init", None)
        if callable(init):
            init()
    except BaseException as e:  # noqa: BLE001 - everything is reported
        _fail("init", e)


def _json_default(value):
    # NumPy arrays and scalars, as a script's `.tolist()` would give.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _answer(result):
    from azureml.contrib.services.aml_response import AMLResponse
    from sandscore import Response

    if isinstance(result, AMLResponse):
        return result.status_code, result.content_type, result.body
    if isinstance(result, Response):
        return result.status, result.content_type, result.body
    if isinstance(result, (bytes, bytearray)):
        return 200, "application/octet-stream", bytes(result)
    return 200, "application/json", json.dumps(result, default=_json_default).encode()


def step():
    """One request: fetched, scored by ``run``, answered."""
    meta, body = call(REQUEST, {})
    try:
        if _raw:
            from azureml.contrib.services.aml_request import AMLRequest

            arg = AMLRequest(bytes(body), meta["content_type"], meta["headers"], meta.get("method", "POST"),
                             meta.get("query", ""))
        else:
            try:
                arg = str(body, "utf-8")
            except UnicodeDecodeError as e:
                call(FAIL, {"kind": "bad_request", "message": f"the body is not UTF-8 text: {e}"})
                return
        status, content_type, data = _answer(_run(arg))
    except json.JSONDecodeError as e:
        call(FAIL, {"kind": "bad_request", "message": f"invalid JSON: {e}"})
        return
    except (BadRequest, NotFound) as e:
        call(FAIL, {"kind": "bad_request" if isinstance(e, BadRequest) else "not_found", "message": str(e)})
        return
    except BaseException as e:  # noqa: BLE001 - everything is reported
        _fail("internal", e)
        return
    try:
        call(RESPOND, {"status": status, "content_type": content_type}, data)
    except (HostError, TypeError, ValueError) as e:
        # An answer the host refuses (too large, not an HTTP status): say why.
        call(FAIL, {"kind": "internal", "message": f"the script's answer was refused: {e}"})
