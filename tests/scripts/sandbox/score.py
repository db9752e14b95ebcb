"""What a script that imports the scientific stack still cannot do: every
attempt's outcome, by name. Each request names one attempt."""
import json
import os

import numpy as np
import pandas  # noqa: F401
import sklearn  # noqa: F401


def attempt(name):
    if name == "host_file":
        return open("/etc/passwd").read()
    if name == "model_write":
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "x"), "w") as f:
            return f.write("x")
    if name == "socket":
        import socket
        s = socket.socket()
        return s.connect(("127.0.0.1", 80))
    if name == "subprocess":
        import subprocess
        return subprocess.run(["ls"])
    if name == "thread":
        import threading
        t = threading.Thread(target=lambda: None)
        return t.start()
    if name == "host_env":
        return os.environ.get("PATH") or os.environ.get("HOME_OF_THE_HOST")
    if name == "spin":
        while True:
            pass
    if name == "sleep":
        import time
        time.sleep(3600)
    if name == "exit":
        raise SystemExit(3)
    if name == "numpy":
        return float(np.arange(6).reshape(2, 3).sum())
    raise ValueError(name)


def init():
    pass


def run(raw_data):
    name = json.loads(raw_data)["attempt"]
    try:
        return {"attempt": name, "result": repr(attempt(name))}
    except Exception as e:  # noqa: BLE001 - the outcome is the answer
        return {"attempt": name, "error": type(e).__name__, "message": str(e)[:200]}
