#!/usr/bin/env python3
"""The GPU check's comparer (images/gpu-check.sh): one framework's GPU
server against its CPU server.

Usage: gpu-compare.py CONFIG_JSON "GPU_PID CPU_PID" "GPU_PORT CPU_PORT" REHEARSE

CONFIG_JSON: {"models": [{"name", "width"}], "large": NAME, "score": FILE?}.
Prints each model's outputs GPU vs CPU at batch 1 and 64 (tolerance 1e-4;
and /score through the module when "score" names a request), the GPU
memory the GPU server holds, and p50/p90 latency and requests a second on
the large model at batch 1 and 64. Exits non-zero on a failure.
"""
import http.client
import json
import random
import statistics
import subprocess
import sys
import time

config, pids, ports, rehearse = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
gpu_pid, cpu_pid = pids.split()
GPU, CPU = map(int, ports.split())
failures = []


def wait_ready(port, pid):
    for _ in range(1200):
        if subprocess.run(["kill", "-0", pid]).returncode != 0:
            sys.exit(f"the server on {port} exited (see target/gpu-check/*.log)")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/v2/health/ready")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return c
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"server on {port} never became ready (see target/gpu-check/*.log)")


conns = {GPU: wait_ready(GPU, gpu_pid), CPU: wait_ready(CPU, cpu_pid)}


def post(port, path, body):
    c = conns[port]
    c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{path} on {port}: {r.status} {data[:300]!r}")
    return data


def v2(rows, width):
    flat = [x for row in rows for x in row]
    return json.dumps({"inputs": [{"name": "input", "shape": [len(rows), width], "datatype": "FP32", "data": flat}]}).encode()


def first_output(data):
    return json.loads(data)["outputs"][0]["data"]


print("  outputs, GPU vs CPU (tolerance 1e-4)")
random.seed(7)
cases = []
if config.get("score"):
    cases.append(("/score (the module)", "/score", open(config["score"], "rb").read(),
                  lambda d: [x for p in json.loads(d)["predictions"] for x in p["probabilities"]]))
for m in config["models"]:
    for batch in (1, 64):
        rows = [[random.uniform(-1, 1) for _ in range(m["width"])] for _ in range(batch)]
        cases.append((f"V2 {m['name']} batch {batch}", f"/v2/models/{m['name']}/infer", v2(rows, m["width"]), first_output))
for label, path, body, values in cases:
    g, c = values(post(GPU, path, body)), values(post(CPU, path, body))
    gap = max((abs(x - y) for x, y in zip(g, c)), default=0.0) if len(g) == len(c) else float("inf")
    ok = gap <= 1e-4
    failures += [] if ok else [label]
    print(f"  {label:<34} {len(g):>6} values, largest difference {gap:.2e}  {'ok' if ok else 'FAIL'}")

print("  GPU memory held by the GPU server")
if rehearse:
    print("    (rehearsal: no GPU)")
else:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout
    mine = [line for line in out.splitlines() if line.split(",")[0].strip() == gpu_pid]
    print("    " + (mine[0] if mine else f"server pid {gpu_pid} holds no GPU memory: {out.strip() or 'no compute apps'}"))
    failures += [] if mine else ["GPU memory"]

large = config["large"]
print(f"  latency, {large} (1024 -> 4 x 1024x1024 -> 1024), V2 JSON, one client, keep-alive")
print(f"  {'batch':>5} {'device':>6} {'p50 ms':>8} {'p90 ms':>8} {'req/s':>7}")
for batch, n in ((1, 300), (64, 60)):
    body = v2([[random.uniform(-1, 1) for _ in range(1024)] for _ in range(batch)], 1024)
    for port, name in ((CPU, "cpu"), (GPU, "gpu")):
        for _ in range(10):
            post(port, f"/v2/models/{large}/infer", body)
        took = []
        for _ in range(n):
            t = time.perf_counter()
            post(port, f"/v2/models/{large}/infer", body)
            took.append((time.perf_counter() - t) * 1e3)
        took.sort()
        print(f"  {batch:>5} {name:>6} {statistics.median(took):>8.2f} {took[int(0.9 * len(took))]:>8.2f} {1e3 * n / sum(took):>7.0f}")

sys.exit(f"FAILED: {', '.join(failures)}" if failures else 0)
