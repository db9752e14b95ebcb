#!/usr/bin/env bash
# The GPU check of the ONNX Runtime CUDA path, for a machine with an NVIDIA
# GPU that CI does not have. It runs the sandscore binary with ONNX
# Runtime's CUDA build (the GPU image's libraries) and prints: the device,
# that the models ran on it (the runtime's placement, the provider, the GPU
# memory the server holds), outputs equal to the CPU run within 1e-4, and
# latency GPU vs CPU on the large benchmark model at batch 1 and 64.
#
#   images/gpu-check.sh pack      here (`make gpu-check`): writes
#                                 target/gpu-check/kit.tar.xz (stripped
#                                 binary, models, module) and the ORT CUDA
#                                 libraries in parts under 56 MiB
#                                 (ort.tar.xz.part-*), since at most 64 MiB
#                                 travels with one call to the GPU machine
#   images/gpu-check.sh run       on the GPU machine, once the kit and every
#                                 part are under target/gpu-check/ (or ORT's
#                                 CUDA build is importable as Python's
#                                 onnxruntime, and then no part is needed)
#   images/gpu-check.sh rehearse  here, without a GPU: the same run with
#                                 --gpu-fallback cpu, to check the script
#
# The CUDA libraries (cuBLAS, cuDNN, …) are taken from the GPU machine's
# Python nvidia-* packages (`python3 -m pip show nvidia-cublas`), or from
# the GPU image's layout when the parts brought it. The driver's
# libcuda.so.1 is the machine's.
#
# With the device tool, parts travel as ignored files in `carry`, one call
# each (earlier ones stay while the machine is warm); the last call carries
# the kit and the last part and runs the check:
#   run carry=[target/gpu-check/ort.tar.xz.part-00]  command="images/gpu-check.sh probe"
#   run carry=[…part-01] …  command="ls -la target/gpu-check"
#   run carry=[target/gpu-check/kit.tar.xz, …part-03] command="images/gpu-check.sh run"
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$repo/target/gpu-check
mode=${1:-run}

pack() {
  local release=$repo/target/release models=$repo/target/models
  local ort=$release/onnxruntime-gpu guests=$repo/target/wasm32-wasip2/guest
  for need in "$release/sandscore" "$ort/libonnxruntime_providers_cuda.so" "$models/mlp.onnx" "$guests/onnx_mlp.wasm"; do
    [ -e "$need" ] || { echo "missing $need: run make all ort-gpu first" >&2; exit 1; }
  done
  rm -rf "$dir" && mkdir -p "$dir/kit/models"
  cp "$release/sandscore" "$dir/kit/sandscore" && strip "$dir/kit/sandscore"
  cp "$models/mlp.onnx" "$dir/kit/models/"
  "${PY:-$HOME/.cache/sandscore/venv/bin/python}" "$repo/bench/make_models.py" "$dir/kit/models" >/dev/null
  cp "$guests/onnx_mlp.wasm" "$dir/kit/"
  tar -C "$dir" -cJf "$dir/kit.tar.xz" kit && rm -rf "$dir/kit"
  tar -C "$ort" -c libonnxruntime.so libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so \
    | xz -T0 -6 | split -b 56M -d - "$dir/ort.tar.xz.part-"
  ls -la "$dir"
}

# Prints what the GPU machine offers: GPU, driver, Python CUDA libraries, ORT.
probe() {
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used --format=csv || echo "nvidia-smi: no NVIDIA driver here"
  python3 - <<'EOF' || true
import glob, importlib.util, os, sys
print("python", sys.version.split()[0])
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
for root in roots:
    print("CUDA libraries:", ", ".join(sorted(os.path.basename(p) for p in glob.glob(f"{root}/*/lib/lib*.so*"))))
ort = importlib.util.find_spec("onnxruntime")
print("onnxruntime:", ort.origin if ort else "not installed")
EOF
  ls -la "$dir" 2>/dev/null || true
}

# LD_LIBRARY_PATH entries for the CUDA libraries: the Python nvidia-*
# packages' lib folders (the GPU image's 2 GB cuda/ is too big to travel).
cuda_path() {
  python3 - <<'EOF'
import glob, importlib.util
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
print(":".join(sorted({d for r in roots for d in glob.glob(f"{r}/*/lib")})))
EOF
}

# The folder holding ORT's CUDA build: the reassembled parts, else Python's.
ort_dir() {
  if ls "$dir"/ort.tar.xz.part-* >/dev/null 2>&1; then
    mkdir -p "$dir/ort"
    [ -f "$dir/ort/libonnxruntime_providers_cuda.so" ] || cat "$dir"/ort.tar.xz.part-* | xz -d | tar -C "$dir/ort" -x
    echo "$dir/ort"
    return
  fi
  python3 - <<'EOF'
import glob, importlib.util, os, sys
spec = importlib.util.find_spec("onnxruntime")
capi = os.path.join(os.path.dirname(spec.origin), "capi") if spec else ""
if not glob.glob(f"{capi}/libonnxruntime_providers_cuda.so"):
    sys.exit("no ORT CUDA build: bring target/gpu-check/ort.tar.xz.part-* (images/gpu-check.sh pack)")
lib = os.path.join(capi, "libonnxruntime.so")
if not os.path.exists(lib):
    os.symlink(sorted(glob.glob(f"{capi}/libonnxruntime.so.*"))[0], lib)
print(capi)
EOF
}

run() {
  local rehearse=${1:-}
  [ -f "$dir/kit.tar.xz" ] || { echo "no $dir/kit.tar.xz: images/gpu-check.sh pack, then carry it" >&2; exit 1; }
  [ -d "$dir/kit" ] || tar -C "$dir" -xJf "$dir/kit.tar.xz"
  local ort cuda
  ort=$(ort_dir)
  cuda=$(cuda_path)
  echo "== device"
  if [ -z "$rehearse" ]; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
  else
    echo "rehearsal: no GPU; the gpu models fall back to the CPU"
  fi
  echo "ORT CUDA build: $ort"
  echo "CUDA libraries: ${cuda:-none found}"
  local fallback=()
  [ -z "$rehearse" ] || fallback=(--gpu-fallback cpu)
  export LD_LIBRARY_PATH="$ort:$cuda${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export SANDSCORE_ALLOW_ROOT=1 RUST_LOG=info
  local bin=$dir/kit/sandscore models=$dir/kit/models
  echo "== placement (sandscore check)"
  "$bin" check --model-dir "$models" --ort-lib "$ort/libonnxruntime.so" \
    --model-device mlp=gpu,large=gpu "${fallback[@]}" >"$dir/check.log" 2>&1 || true
  grep -E "^  (mlp|large) " "$dir/check.log" || true
  grep -m1 -E "WARN|error" "$dir/check.log" | cut -c1-400 || true
  local ports
  ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  "$bin" serve --host 127.0.0.1 --port "${ports% *}" --model-dir "$models" --module "$dir/kit/onnx_mlp.wasm" \
    --ort-lib "$ort/libonnxruntime.so" --model-device mlp=gpu,large=gpu "${fallback[@]}" \
    --no-cache >"$dir/gpu.log" 2>&1 &
  gpu_pid=$!
  "$bin" serve --host 127.0.0.1 --port "${ports#* }" --model-dir "$models" --module "$dir/kit/onnx_mlp.wasm" \
    --ort-lib "$ort/libonnxruntime.so" --no-cache >"$dir/cpu.log" 2>&1 &
  cpu_pid=$!
  trap 'kill $gpu_pid $cpu_pid 2>/dev/null; wait 2>/dev/null || true' EXIT
  local status=0
  python3 - "$repo/examples/onnx-mlp/request.json" "$gpu_pid $cpu_pid" "$ports" "$rehearse" <<'EOF' || status=$?
import http.client, json, random, statistics, subprocess, sys, time

request_file, pids, ports, rehearse = sys.argv[1:5]
gpu_pid, cpu_pid = pids.split()
GPU, CPU = map(int, ports.split())
failures = []

def wait_ready(port, pid):
    for _ in range(600):
        if subprocess.run(["kill", "-0", pid]).returncode != 0:
            sys.exit(f"the server on {port} exited (see target/gpu-check/*.log)")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
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

def v2(model, rows, width):
    flat = [x for row in rows for x in row]
    return json.dumps({"inputs": [{"name": "input", "shape": [len(rows), width], "datatype": "FP32", "data": flat}]}).encode()

def largest_gap(a, b):
    return max(abs(x - y) for x, y in zip(a, b))

print("== outputs, GPU vs CPU (tolerance 1e-4)")
random.seed(7)
cases = [("/score (module onnx_mlp, mlp)", "/score", open(request_file, "rb").read(), lambda d: [x for p in json.loads(d)["predictions"] for x in p["probabilities"]])]
for model, width in (("mlp", 64), ("large", 1024)):
    for batch in (1, 64):
        rows = [[random.uniform(-1, 1) for _ in range(width)] for _ in range(batch)]
        cases.append((f"V2 {model} batch {batch}", f"/v2/models/{model}/infer", v2(model, rows, width),
                      lambda d: json.loads(d)["outputs"][0]["data"]))
for label, path, body, values in cases:
    g, c = values(post(GPU, path, body)), values(post(CPU, path, body))
    gap = largest_gap(g, c) if len(g) == len(c) else float("inf")
    ok = gap <= 1e-4
    failures += [] if ok else [label]
    print(f"  {label:<34} {len(g):>6} values, largest difference {gap:.2e}  {'ok' if ok else 'FAIL'}")

print("== GPU memory held by the GPU server")
if rehearse:
    print("  (rehearsal: no GPU)")
else:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout
    mine = [l for l in out.splitlines() if l.split(",")[0].strip() == gpu_pid]
    print("  " + (mine[0] if mine else f"server pid {gpu_pid} holds no GPU memory: {out.strip() or 'no compute apps'}"))
    failures += [] if mine else ["GPU memory"]

print("== latency, large model (1024 -> 4 x 1024x1024 -> 1024), V2 JSON, one client, keep-alive")
print(f"  {'batch':>5} {'device':>6} {'p50 ms':>8} {'p90 ms':>8} {'req/s':>7}")
for batch, n in ((1, 300), (64, 60)):
    body = v2("large", [[random.uniform(-1, 1) for _ in range(1024)] for _ in range(batch)], 1024)
    for port, name in ((CPU, "cpu"), (GPU, "gpu")):
        for _ in range(10):
            post(port, "/v2/models/large/infer", body)
        took = []
        for _ in range(n):
            t = time.perf_counter()
            post(port, "/v2/models/large/infer", body)
            took.append((time.perf_counter() - t) * 1e3)
        took.sort()
        print(f"  {batch:>5} {name:>6} {statistics.median(took):>8.2f} {took[int(0.9 * len(took))]:>8.2f} {1e3 * n / sum(took):>7.0f}")

sys.exit(f"FAILED: {', '.join(failures)}" if failures else 0)
EOF
  echo "== the GPU server's placement log"
  grep -E "model loaded" "$dir/gpu.log" | sed -E 's/^.*(model=[a-z]+).*(device=[a-z0-9:]+).*$/  \1 \2/' || true
  if [ -z "$rehearse" ] && ! grep -q "device=cuda:0" "$dir/gpu.log"; then
    echo "FAILED: no model was placed on cuda:0"; status=1
  fi
  echo "PyTorch on CUDA is not part of this check: the built libtorch is the CPU build (see the note in images/images.toml)."
  local verdict="GPU CHECK"
  [ -z "$rehearse" ] || verdict="GPU CHECK REHEARSAL (no GPU: nothing ran on one)"
  [ "$status" = 0 ] && echo "$verdict PASSED" || echo "$verdict FAILED"
  return "$status"
}

case $mode in
  pack) pack ;;
  probe) probe ;;
  run) run ;;
  rehearse) run rehearse ;;
  *) echo "usage: $0 pack|probe|run|rehearse" >&2; exit 2 ;;
esac
