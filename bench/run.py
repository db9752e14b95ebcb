#!/usr/bin/env python3
"""sandscore's benchmark harness: every number side by side, one run, one machine.

Starts each server itself (sandscore /score through a Rust module and
through the same work as a Python score.py, both as a componentize-py
component and run as it is by the Python runtime (and its memory per warm
worker, and a container's start, with an unchanged numpy script), sandscore
V2 with no module (and with dynamic batching of the large model), a
plain native Rust server (hyper + serde_json + ort, no sandbox: the
floor), the
Azure ML inference server with default workers and with WORKER_COUNT=2, and
running that same score.py natively, Seldon MLServer, a bare hyper server as
the HTTP ceiling; V2 as JSON, as Triton's binary tensor data, and over gRPC
for sandscore and MLServer alike),
loads each with wrk (gRPC: runtime/examples/grpc_load.rs) at fixed
concurrency for a fixed time after a warm-up,
measures cold start and resident memory, reads the in-process results that
`cargo bench --bench overhead` wrote, and writes docs/BENCHMARKS.md and
docs/benchmarks.png. Bounded in time; stops every server it started.

Usage: run.py CONFIG.json   (written by `make bench`; see the Makefile)
"""
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CFG = json.loads(Path(sys.argv[1]).read_text())
DURATION = int(CFG.get("duration", 8))
WARMUP = int(CFG.get("warmup", 2))
COLD_RUNS = int(CFG.get("cold_runs", 5))
CONCURRENCY = [1, 16]
ROOT = Path(__file__).resolve().parent.parent
FEATURES = {"mlp": 64, "large": 1024}


def row(model):
    n = FEATURES[model]
    return [round(((i % 97) * 0.013), 4) for i in range(n)]


def score_body(model):
    return json.dumps({"model": model, "input": "input", "data": [row(model)]})


def v2_body(model):
    return json.dumps({"inputs": [{"name": "input", "shape": [1, FEATURES[model]], "datatype": "FP32", "data": row(model)}]})


def v2_binary_body(model):
    """The same row as Triton's binary tensor data extension: a JSON header,
    then the FP32 bytes; and the header's length."""
    import struct
    data = struct.pack(f"<{FEATURES[model]}f", *row(model))
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, FEATURES[model]], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(data)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + data, len(header)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def post(url, body, timeout=5):
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_for(url, body, deadline_s=120, proc=None):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            status, _ = post(url, body, timeout=2)
            if status == 200:
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} never answered 200")


def tree_rss_mib(pid):
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Server:
    """One server process; `start` returns the seconds from exec to first 200."""

    def __init__(self, name, cmd, env, score_url, body, cwd=None):
        self.name, self.cmd, self.env, self.url, self.body, self.cwd = name, cmd, env, score_url, body, cwd
        self.proc = None

    def start(self):
        env = dict(os.environ, **self.env)
        self.log = tempfile.TemporaryFile()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=self.cwd, stdout=self.log, stderr=self.log, start_new_session=True)
        try:
            wait_for(self.url, self.body, proc=self.proc)
        except Exception:
            self.log.seek(0)
            print(self.log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            self.stop()
            raise
        return time.monotonic() - t0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wrk(url, body, connections, seconds):
    """wrk POSTing `body`: JSON text, or (bytes, header length) for the
    binary tensor data extension (read by the script from a file)."""
    blob = None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if isinstance(body, tuple):
            data, header_len = body
            with tempfile.NamedTemporaryFile("wb", suffix=".bin", delete=False) as b:
                b.write(data)
                blob = b.name
            f.write('wrk.method = "POST"\nwrk.headers["content-type"] = "application/octet-stream"\n')
            f.write(f'wrk.headers["Inference-Header-Content-Length"] = "{header_len}"\n')
            f.write(f'local f = io.open("{blob}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
        else:
            f.write('wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n')
            f.write(f"wrk.body = {json.dumps(body)}\n")
        script = f.name
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", script, url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    os.unlink(script)
    if blob:
        os.unlink(blob)

    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "errors": errors, "requests": total}


def grpc_load(addr, model, connections, seconds):
    """gRPC ModelInfer load (raw input contents, one row), in wrk's terms."""
    out = subprocess.run([CFG["grpc_load"], addr, model, str(FEATURES[model]), str(seconds), str(connections)],
                         capture_output=True, text=True, timeout=seconds + 60)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print(f"grpc_load failed: {out.stderr[-2000:]}", file=sys.stderr)
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": -1, "requests": 0}
    return {"rps": r["requests_per_second"], "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
            "errors": r["errors"], "requests": int(r["requests_per_second"] * seconds)}


def peer_version(venv, package):
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return f"{package} {out.stdout.strip() or 'unknown'}"


def main():
    bench_models = Path(CFG["bench_models"])
    sandscore, guests = CFG["sandscore"], Path(CFG["guests"])
    azure_venv, ml_venv = Path(CFG["azureml_venv"]), Path(CFG["mlserver_venv"])
    root_flag = ["--allow-root"] if os.geteuid() == 0 else []
    common_env = {"RUST_LOG": "warn", "ORT_DYLIB_PATH": CFG["ort_lib"]}
    results = {"http": [], "cold": [], "memory": []}

    # Cold starts load the small model alone, as the Azure ML server's score.py does.
    small_only = Path(tempfile.mkdtemp(prefix="sandscore-bench-small-"))
    shutil.copy(bench_models / "mlp.onnx", small_only)
    # Readable by a container's uid 10001 too.
    os.chmod(small_only, 0o755)

    def sandscore_server(name, module, cache_dir, models=bench_models, grpc_port=0):
        port = free_port()
        cmd = [sandscore, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port),
               "--model-dir", str(models), "--workers", "2", "--cache-dir", str(cache_dir), *root_flag]
        if module:
            path = {"python": CFG["python_guest"], "python-runtime": str(ROOT / "bench/guest-python/score.py")}
            cmd += ["--module", path.get(module, str(guests / "bench_guest.wasm"))]
            return Server(name, cmd, common_env, f"http://127.0.0.1:{port}/score", score_body("mlp"))
        return Server(name, cmd, common_env, f"http://127.0.0.1:{port}/v2/models/mlp/infer", v2_body("mlp"))

    def azureml_server(name, model, workers, same_script=False):
        port = free_port()
        env = {"AZUREML_MODEL_DIR": str(bench_models), "BENCH_MODEL": model, "PYTHONUNBUFFERED": "1"}
        if workers:
            env["WORKER_COUNT"] = str(workers)
        script = ROOT / "bench/peers/azureml/score.py"
        if same_script:
            # The Python guest's own score.py, its `sandscore` module backed by onnxruntime.
            script = ROOT / "bench/guest-python/score.py"
            env["PYTHONPATH"] = str(ROOT / "bench/peers/azureml-python")
        cmd = [str(azure_venv / "bin" / "azmlinfsrv"), "--entry_script", str(script), "--port", str(port)]
        return Server(name, cmd, env, f"http://127.0.0.1:{port}/score", score_body(model))

    def mlserver_server(name, grpc_port=0):
        port = free_port()
        work = Path(tempfile.mkdtemp(prefix="sandscore-mlserver-"))
        shutil.copy(ROOT / "bench/peers/mlserver/runtime.py", work)
        settings = json.loads((ROOT / "bench/peers/mlserver/settings.json").read_text())
        settings.update({"http_port": port, "host": "127.0.0.1"})
        if grpc_port:
            settings.update({"grpc_port": grpc_port})
        (work / "settings.json").write_text(json.dumps(settings))
        for m in FEATURES:
            (work / m).mkdir()
            text = (ROOT / f"bench/peers/mlserver/{m}/model-settings.json").read_text().replace("MODELS_DIR", str(bench_models))
            (work / m / "model-settings.json").write_text(text)
        cmd = [str(ml_venv / "bin" / "mlserver"), "start", str(work)]
        return Server(name, cmd, {}, f"http://127.0.0.1:{port}/v2/models/mlp/infer", v2_body("mlp"), cwd=str(work))

    def native_server():
        port = free_port()
        return Server("plain native server", [CFG["native"], str(port), str(bench_models), CFG["ort_lib"]], {},
                      f"http://127.0.0.1:{port}/v2/models/mlp/infer", v2_body("mlp"))

    def ceiling_server():
        port = free_port()
        return Server("hyper ceiling", [CFG["ceiling"], str(port)], {}, f"http://127.0.0.1:{port}/", "{}")

    def load(server, label, url_for, body_for, models, grpc=None):
        for model in models:
            for c in CONCURRENCY:
                if grpc:
                    # grpc_load warms each connection up for a second itself.
                    r = grpc_load(grpc, model, c, DURATION)
                else:
                    url, body = url_for(model), body_for(model)
                    wrk(url, body, c, WARMUP)
                    r = wrk(url, body, c, DURATION)
                r.update({"server": label, "model": model, "concurrency": c})
                print(f"{label:<34} {model:<6} c={c:<3} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:>8.2f} ms  p99 {r['p99_ms']:>8.2f} ms  errors {r['errors']}", flush=True)
                results["http"].append(r)

    # Cold start: exec to first successful score, median of several runs.
    def cold(label, make, runs, before=None):
        times = []
        for _ in range(runs):
            if before:
                before()
            s = make()
            times.append(s.start())
            s.stop()
        results["cold"].append({"server": label, "median_ms": statistics.median(times) * 1e3, "runs": len(times)})

    cache = Path(tempfile.mkdtemp(prefix="sandscore-bench-cache-"))
    cold("sandscore /score, empty compiled-code cache", lambda: sandscore_server("cold", True, cache, small_only), COLD_RUNS,
         before=lambda: shutil.rmtree(cache, ignore_errors=True))
    cold("sandscore /score, warm compiled-code cache", lambda: sandscore_server("warm", True, cache, small_only), COLD_RUNS)
    cold("Azure ML inference server", lambda: azureml_server("azureml", "mlp", None), max(3, COLD_RUNS // 2))
    cold("MLServer", lambda: mlserver_server("mlserver"), max(3, COLD_RUNS // 2))
    cold("sandscore /score, Python module (precompiled .cwasm)", lambda: sandscore_server("python", "python", cache, small_only), COLD_RUNS)
    # The Python runtime: its compiled code cached (the first start of all
    # compiles it), the script imported and init() run in each worker.
    def runtime():
        return sandscore_server("python-runtime", "python-runtime", cache, small_only)
    s = runtime()
    s.start()
    s.stop()
    cold("sandscore /score, same score.py in the Python runtime (cached runtime)", runtime, COLD_RUNS)
    # Memory per warm worker of an unchanged script that imports numpy and
    # calls onnxruntime (tests/scripts/onnx_numpy): resident memory at 3
    # workers less at 1, halved; in the Python runtime and natively.
    numpy_script = ROOT / "tests/scripts/onnx_numpy/score.py"

    def script_server(workers):
        port = free_port()
        cmd = [sandscore, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
               "--model-dir", str(small_only), "--workers", str(workers), "--cache-dir", str(cache),
               "--module", str(numpy_script), *root_flag]
        return Server("numpy script", cmd, common_env, f"http://127.0.0.1:{port}/score", score_body("mlp"))

    def native_script(workers):
        port = free_port()
        env = {"AZUREML_MODEL_DIR": str(small_only), "WORKER_COUNT": str(workers), "PYTHONUNBUFFERED": "1"}
        cmd = [str(azure_venv / "bin" / "azmlinfsrv"), "--entry_script", str(numpy_script), "--port", str(port)]
        return Server("numpy script natively", cmd, env, f"http://127.0.0.1:{port}/score", score_body("mlp"))

    for label, make in [("sandscore, Python runtime", script_server), ("Azure ML server natively", native_script)]:
        rss = {}
        for workers in (1, 3):
            s = make(workers)
            s.start()
            # Every worker has imported the script: each answers once.
            for _ in range(4 * workers):
                post(s.url, s.body)
            rss[workers] = tree_rss_mib(s.proc.pid)
            s.stop()
        results["memory"].append({"server": f"{label}: per warm worker of a numpy + onnxruntime score.py (3 workers less 1, halved)",
                                  "rss_mib": (rss[3] - rss[1]) / 2})
    # A container of the image with the Python runtime: docker run to the
    # first score of that script, its code precompiled in the image.
    image = "sandscore/onnxruntime-cpu:latest"
    have_image = shutil.which("docker") and subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True).returncode == 0
    if have_image:
        times = []
        for _ in range(3):
            port = free_port()
            t0 = time.monotonic()
            cid = subprocess.run(["docker", "run", "-d", "--rm", "--read-only", "-p", f"127.0.0.1:{port}:5001",
                                  "-v", f"{small_only}:/models:ro", "-v", f"{numpy_script.parent}:/app/src:ro",
                                  "-e", "AZUREML_ENTRY_SCRIPT=/app/src/score.py", image],
                                 capture_output=True, text=True, check=True).stdout.strip()
            try:
                wait_for(f"http://127.0.0.1:{port}/score", score_body("mlp"))
                times.append(time.monotonic() - t0)
            finally:
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        results["cold"].append({"server": "container (onnxruntime-cpu image): docker run to first score of the numpy score.py", "median_ms": statistics.median(times) * 1e3, "runs": len(times)})
    else:
        print(f"no {image} (make images, with Docker running): no container start row", flush=True)
    for c in results["cold"]:
        print(f"cold start  {c['server']:<46} {c['median_ms']:>8.0f} ms (median of {c['runs']})", flush=True)

    # Throughput, latency and memory, server by server.
    s = sandscore_server("sandscore", True, cache)
    s.start()
    results["memory"].append({"server": "sandscore (module + 3 models: small, large, iris; 2 workers)", "rss_mib": tree_rss_mib(s.proc.pid)})
    base = s.url.rsplit("/", 1)[0]
    load(s, "sandscore /score (module)", lambda m: f"{base}/score", score_body, FEATURES)
    s.stop()
    s = sandscore_server("sandscore-python", "python", cache)
    s.start()
    results["memory"].append({"server": "sandscore, Python module (3 models; 2 workers)", "rss_mib": tree_rss_mib(s.proc.pid)})
    base = s.url.rsplit("/", 1)[0]
    load(s, "sandscore /score (Python module)", lambda m: f"{base}/score", score_body, FEATURES)
    s.stop()
    grpc_port = free_port()
    s = sandscore_server("sandscore-pyrt", "python-runtime", cache)
    s.start()
    results["memory"].append({"server": "sandscore, same score.py in the Python runtime (3 models; 2 workers)", "rss_mib": tree_rss_mib(s.proc.pid)})
    base = s.url.rsplit("/", 1)[0]
    load(s, "sandscore /score (Python runtime)", lambda m: f"{base}/score", score_body, FEATURES)
    s.stop()
    s = sandscore_server("sandscore-v2", False, cache, grpc_port=grpc_port)
    s.start()
    base = s.url.split("/v2/")[0]
    load(s, "sandscore V2 infer (no module)", lambda m: f"{base}/v2/models/{m}/infer", v2_body, FEATURES)
    load(s, "sandscore V2 infer, binary tensors (no module)", lambda m: f"{base}/v2/models/{m}/infer", v2_binary_body, FEATURES)
    load(s, "sandscore V2 gRPC (no module)", None, None, FEATURES, grpc=f"127.0.0.1:{grpc_port}")
    s.stop()
    # Dynamic batching of the large model (flag form; 500 µs window, as many
    # batches at once as cores): one row per request still, stacked inside.
    port = free_port()
    cmd = [sandscore, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
           "--model-dir", str(bench_models), "--workers", "2", "--cache-dir", str(cache),
           "--dynamic-batching", "large=32", *root_flag]
    s = Server("sandscore-batched", cmd, common_env, f"http://127.0.0.1:{port}/v2/models/large/infer", v2_body("large"))
    s.start()
    load(s, "sandscore V2 infer, dynamic batching (no module)", lambda m: f"http://127.0.0.1:{port}/v2/models/{m}/infer", v2_body, ["large"])
    s.stop()
    s = native_server()
    s.start()
    base = s.url.split("/v2/")[0]
    load(s, "plain native server (serde_json + ort)", lambda m: f"{base}/v2/models/{m}/infer", v2_body, FEATURES)
    s.stop()
    for workers, label in [(None, "Azure ML server (default workers)"), (2, "Azure ML server (WORKER_COUNT=2)")]:
        for model in FEATURES:
            s = azureml_server(label, model, workers)
            s.start()
            if model == "mlp":
                results["memory"].append({"server": label, "rss_mib": tree_rss_mib(s.proc.pid)})
            load(s, label, lambda m, u=s.url: u, score_body, [model])
            s.stop()
    label = "Azure ML server, same score.py natively (WORKER_COUNT=2)"
    s = azureml_server(label, "mlp", 2, same_script=True)
    s.start()
    results["memory"].append({"server": label, "rss_mib": tree_rss_mib(s.proc.pid)})
    load(s, label, lambda m, u=s.url: u, score_body, FEATURES)
    s.stop()
    grpc_port = free_port()
    s = mlserver_server("mlserver", grpc_port=grpc_port)
    s.start()
    results["memory"].append({"server": "MLServer (2 models)", "rss_mib": tree_rss_mib(s.proc.pid)})
    base = s.url.split("/v2/")[0]
    load(s, "MLServer V2 infer", lambda m: f"{base}/v2/models/{m}/infer", v2_body, FEATURES)
    load(s, "MLServer V2 gRPC", None, None, FEATURES, grpc=f"127.0.0.1:{grpc_port}")
    s.stop()
    s = ceiling_server()
    s.start()
    load(s, "bare hyper (ceiling)", lambda m: s.url, lambda m: "{}", ["mlp"])
    s.stop()

    # The floor, alternating: the plain native server and sandscore's
    # paths against it, one after another, three rounds, at 16 connections;
    # the median of each, so a neighbour's burst moves one round, not a ratio.
    def batched_server():
        port = free_port()
        cmd = [sandscore, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
               "--model-dir", str(bench_models), "--workers", "2", "--cache-dir", str(cache),
               "--dynamic-batching", "large=32", *root_flag]
        return Server("sandscore-batched", cmd, common_env, f"http://127.0.0.1:{port}/v2/models/large/infer", v2_body("large"))

    def v2_path(server, model):
        return f"{server.url.split('/v2/')[0]}/v2/models/{model}/infer"

    floor_runs = [
        ("plain native server (serde_json + ort)", native_server, "mlp", v2_path, v2_body),
        ("sandscore V2 infer (no module)", lambda: sandscore_server("floor-v2", False, cache), "mlp", v2_path, v2_body),
        ("sandscore /score (module)", lambda: sandscore_server("floor-score", True, cache), "mlp",
         lambda s, m: s.url, score_body),
        ("plain native server (serde_json + ort)", native_server, "large", v2_path, v2_body),
        ("sandscore V2 infer, dynamic batching (no module)", batched_server, "large", v2_path, v2_body),
    ]
    rounds = {}
    for _ in range(3):
        for label, make, model, url_of, body_for in floor_runs:
            s = make()
            s.start()
            url = url_of(s, model)
            wrk(url, body_for(model), 16, WARMUP)
            r = wrk(url, body_for(model), 16, DURATION)
            s.stop()
            rounds.setdefault((label, model), []).append(r)
            print(f"floor {label:<44} {model:<6} {r['rps']:>9.0f} req/s  p99 {r['p99_ms']:>8.2f} ms", flush=True)
    results["floor"] = [{"server": label, "model": model, "concurrency": 16, "rounds": len(rs),
                         "rps": statistics.median(r["rps"] for r in rs),
                         "p99_ms": statistics.median(r["p99_ms"] for r in rs)}
                        for (label, model), rs in rounds.items()]

    results["inprocess"] = [json.loads(l) for l in Path(CFG["inprocess"]).read_text().splitlines() if l.strip()]
    results["peer_versions"] = [peer_version(azure_venv, "azureml-inference-server-http"), peer_version(ml_venv, "mlserver"),
                                peer_version(azure_venv, "onnxruntime") + " (Python, in both peers)"]
    results.update({"duration": DURATION, "warmup": WARMUP})
    Path(CFG["results"]).write_text(json.dumps(results, indent=1))
    subprocess.run([sys.executable, str(ROOT / "bench/report.py"), CFG["results"], str(ROOT / "docs")], check=True)


if __name__ == "__main__":
    main()
