"""A Python module that misbehaves on request, for the tests: each request
names an action, and the test checks the sandbox's answer to it."""

import json
import os
import socket
import threading

import sandscore


def init():
    global model
    model = sandscore.Model.by_name("mlp")


def run(raw_data):
    action = json.loads(raw_data).get("action")
    if action == "ok":
        return {"ok": True}
    if action == "raise":
        raise ValueError("the script gave up")
    if action == "read":
        with open(json.loads(raw_data)["path"], "rb") as f:
            return {"bytes": len(f.read())}
    if action == "write":
        with open(json.loads(raw_data)["path"], "wb") as f:
            f.write(b"x")
        return {"wrote": True}
    if action == "list":
        return {"entries": sorted(os.listdir(json.loads(raw_data)["path"]))}
    if action == "socket":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 5001))
        return {"connected": True}
    if action == "thread":
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        return {"thread": True}
    if action == "bad-input":
        return {"out": model.run({"input": sandscore.Tensor.of([[1.0, 2.0]])})["probabilities"].tolist()}
    if action == "exit":
        raise SystemExit(3)
    raise sandscore.BadRequest(f"unknown action {action!r}")
