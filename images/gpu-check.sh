#!/usr/bin/env bash
# The GPU check of the three CUDA paths (ONNX Runtime, TensorFlow, PyTorch),
# for a machine with an NVIDIA GPU that CI does not have. For each
# framework it runs the sandscore binary twice (models on the GPU, and on
# the CPU) and prints: the device, that the models ran on it (the
# runtime's placement, the GPU memory the server holds), outputs equal to
# the CPU run within 1e-4, and latency GPU vs CPU on a large model (1024 ->
# 4 x 1024x1024 -> 1024) at batch 1 and 64.
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
# libcuda.so.1 is the machine's. TensorFlow's and PyTorch's libraries (1.2
# and 1 GB: too big to travel) are the machine's Python tensorflow and
# torch packages, which also write the large models there
# (images/gpu-models.py); a framework the machine lacks is reported as
# skipped. PyTorch needs torch 2.13 (runtime/torch's shim travels in the
# kit). GPU_CHECK_TF_LIB, GPU_CHECK_TORCH_LIB, GPU_CHECK_TF_PYTHON and
# GPU_CHECK_TORCH_PYTHON (a command: it may start with `env VAR=…`) point
# elsewhere (the rehearsal uses the CPU builds and the venvs).
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
  rm -rf "$dir" && mkdir -p "$dir/kit/models" "$dir/kit/models-tf" "$dir/kit/models-torch"
  cp "$release/sandscore" "$dir/kit/sandscore" && strip "$dir/kit/sandscore"
  cp "$models/mlp.onnx" "$dir/kit/models/"
  "${PY:-$HOME/.cache/sandscore/venv/bin/python}" "$repo/bench/make_models.py" "$dir/kit/models" >/dev/null
  cp "$guests/onnx_mlp.wasm" "$dir/kit/"
  # TensorFlow's and PyTorch's small models and the PyTorch shim, when
  # `make tensorflow pytorch` built them (their large models are written
  # on the GPU machine, by its own frameworks).
  if [ -d "$repo/target/models-tensorflow/iris_tf" ]; then
    cp -r "$repo/target/models-tensorflow/iris_tf" "$dir/kit/models-tf/"
  fi
  if [ -f "$repo/target/models-pytorch/iris_torch.pt" ]; then
    cp "$repo/target/models-pytorch/iris_torch.pt" "$dir/kit/models-torch/"
  fi
  if [ -f "$release/torch/libsandscore_torch.so" ]; then
    cp "$release/torch/libsandscore_torch.so" "$dir/kit/" && strip "$dir/kit/libsandscore_torch.so"
  fi
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

# The folder of a Python package's libraries on this machine ($1: package,
# $2: a library it must hold, $3: its subfolder), or nothing.
py_libs() {
  python3 - "$@" <<'PY' 2>/dev/null || true
import importlib.util, os, sys
pkg, lib, sub = sys.argv[1:4]
spec = importlib.util.find_spec(pkg)
d = os.path.join(os.path.dirname(spec.origin), sub) if spec and spec.origin else ""
print(d if d and os.path.exists(os.path.join(d, lib)) else "")
PY
}

# One framework: a server with its models on the GPU against one with them
# on the CPU. $1: the framework; $2: the comparer's JSON config (models and
# widths, the large model, a /score request); the rest: both servers'
# flags. The GPU server adds --model-device for every model of the config
# (and, in a rehearsal, the CPU fallback).
compare() {
  local label=$1 config=$2; shift 2
  local devices ports gpu_pid cpu_pid status=0
  devices=$(python3 -c 'import json, sys; print(",".join(m["name"] + "=gpu" for m in json.loads(sys.argv[1])["models"]))' "$config")
  echo "== $label: placement (sandscore check)"
  "$bin" check "$@" --model-device "$devices" "${fallback[@]}" >"$dir/check-$label.log" 2>&1 || true
  grep -E "^  [a-z_]+ " "$dir/check-$label.log" | head -6 || true
  grep -m1 -E " WARN | ERROR |^error" "$dir/check-$label.log" | cut -c1-400 || true
  ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  "$bin" serve --host 127.0.0.1 --port "${ports% *}" --grpc-port 0 "$@" --model-device "$devices" \
    "${fallback[@]}" --no-cache >"$dir/gpu-$label.log" 2>&1 &
  gpu_pid=$!
  "$bin" serve --host 127.0.0.1 --port "${ports#* }" --grpc-port 0 "$@" --no-cache >"$dir/cpu-$label.log" 2>&1 &
  cpu_pid=$!
  python3 "$repo/images/gpu-compare.py" "$config" "$gpu_pid $cpu_pid" "$ports" "$rehearse" || status=1
  kill "$gpu_pid" "$cpu_pid" 2>/dev/null || true
  wait "$gpu_pid" "$cpu_pid" 2>/dev/null || true
  echo "== $label: the GPU server's placement log"
  grep -E "model loaded" "$dir/gpu-$label.log" | sed -E 's/^.*(model=[a-z_]+).*(device=[a-z0-9:]+).*$/  \1 \2/' || true
  if [ -z "$rehearse" ] && ! grep -q "device=cuda:0" "$dir/gpu-$label.log"; then
    echo "FAILED: no $label model was placed on cuda:0"; status=1
  fi
  return "$status"
}

run() {
  rehearse=${1:-}
  [ -f "$dir/kit.tar.xz" ] || { echo "no $dir/kit.tar.xz: images/gpu-check.sh pack, then carry it" >&2; exit 1; }
  [ -d "$dir/kit" ] || tar -C "$dir" -xJf "$dir/kit.tar.xz"
  local ort cuda status=0 skipped=()
  ort=$(ort_dir)
  cuda=$(cuda_path)
  echo "== device"
  if [ -z "$rehearse" ]; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
  else
    echo "rehearsal: no GPU; the gpu models fall back to the CPU"
  fi
  echo "CUDA libraries: ${cuda:-none found}"
  fallback=()
  [ -z "$rehearse" ] || fallback=(--gpu-fallback cpu)
  export SANDSCORE_ALLOW_ROOT=1 RUST_LOG=info
  bin=$dir/kit/sandscore
  local kit=$dir/kit base=$cuda${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

  echo "== onnxruntime: $ort"
  LD_LIBRARY_PATH="$ort:$base" compare onnxruntime \
    '{"models": [{"name": "mlp", "width": 64}, {"name": "large", "width": 1024}], "large": "large", "score": "'"$repo"'/examples/onnx-mlp/request.json"}' \
    --model-dir "$kit/models" --module "$kit/onnx_mlp.wasm" --ort-lib "$ort/libonnxruntime.so" || status=1

  local tf=${GPU_CHECK_TF_LIB:-$(py_libs tensorflow libtensorflow_cc.so.2 .)}
  if [ -n "$tf" ] && [ -d "$kit/models-tf/iris_tf" ]; then
    echo "== tensorflow: $tf"
    [ -d "$kit/models-tf/large_tf" ] || ${GPU_CHECK_TF_PYTHON:-python3} "$repo/images/gpu-models.py" tensorflow "$kit/models-tf" >/dev/null 2>&1
    LD_LIBRARY_PATH="$base" compare tensorflow \
      '{"models": [{"name": "iris_tf", "width": 4}, {"name": "large_tf", "width": 1024}], "large": "large_tf"}' \
      --model-dir "$kit/models-tf" --tensorflow-lib "$tf/libtensorflow_cc.so.2" || status=1
  else
    echo "== tensorflow: SKIPPED (no Python tensorflow with libtensorflow_cc.so.2 here: pip install 'tensorflow[and-cuda]==2.21.0')"
    skipped+=(tensorflow)
  fi

  local torch=${GPU_CHECK_TORCH_LIB:-$(py_libs torch libtorch_cuda.so lib)}
  if [ -n "$torch" ] && [ -f "$kit/libsandscore_torch.so" ] && [ -f "$kit/models-torch/iris_torch.pt" ]; then
    echo "== pytorch: $torch"
    [ -f "$kit/models-torch/large_torch.pt" ] || ${GPU_CHECK_TORCH_PYTHON:-python3} "$repo/images/gpu-models.py" pytorch "$kit/models-torch" >/dev/null 2>&1
    LD_LIBRARY_PATH="$torch:$base" compare pytorch \
      '{"models": [{"name": "iris_torch", "width": 4}, {"name": "large_torch", "width": 1024}], "large": "large_torch"}' \
      --model-dir "$kit/models-torch" --torch-lib "$kit/libsandscore_torch.so" || status=1
  else
    echo "== pytorch: SKIPPED (no Python torch 2.13 with libtorch_cuda.so here: pip install torch==2.13.0)"
    skipped+=(pytorch)
  fi

  local verdict="GPU CHECK"
  [ -z "$rehearse" ] || verdict="GPU CHECK REHEARSAL (no GPU: nothing ran on one)"
  [ ${#skipped[@]} -eq 0 ] || verdict="$verdict (skipped: ${skipped[*]})"
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
