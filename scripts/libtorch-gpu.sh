#!/usr/bin/env bash
# Lays out PyTorch's CUDA build for sandscore/pytorch-gpu from the wheels
# pinned in deps/pytorch-gpu.lock (downloaded once into WHEELS, hashes
# checked), with the backend's native side SHIM (runtime/torch, built by
# `make pytorch` against the same torch 2.13 headers):
#   OUT/torch/  the torch wheel's libraries (libtorch, libtorch_cpu,
#     libtorch_cuda, libc10, libc10_cuda, …; no Python ones) and the shim
#   OUT/cuda/   the CUDA 13 libraries (cuBLAS, cuDNN, cuFFT, cuRAND,
#     cuSOLVER, cuSPARSE(Lt), NCCL, NVSHMEM, NVRTC, nvJitLink, CUPTI,
#     cuFile, NVTX); the image puts this folder on LD_LIBRARY_PATH
# Usage: libtorch-gpu.sh LOCK WHEELS SHIM OUT
set -euo pipefail
lock=$1 wheels=$2 shim=$3 out=$4
mkdir -p "$wheels"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_25_x86_64
  --platform manylinux_2_18_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_12_x86_64 --platform manylinux_2_5_x86_64)
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: --python-version 3.11 "${platforms[@]}" -r "$lock" -d "$wheels"
rm -rf "$out" && mkdir -p "$out/torch" "$out/cuda"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$wheels"/torch-2.*.whl 'torch/lib/*' -d "$tmp"
# Python's bindings and the shared-memory manager's folders are not libtorch.
rm -rf "$tmp"/torch/lib/libtorch_python.so "$tmp"/torch/lib/libshm*
mv "$tmp"/torch/lib/* "$out/torch/"
cp "$shim" "$out/torch/libsandscore_torch.so"
for w in "$wheels"/nvidia_*.whl; do
  unzip -q -o "$w" 'nvidia/*' -d "$tmp" 2>/dev/null || true
done
find "$tmp/nvidia" -path '*/lib/*' -name '*.so*' -exec mv {} "$out/cuda/" \;
# Libraries nothing loads: the BLAS/FFTW drop-in replacements.
rm -f "$out"/cuda/libnvblas.so.* "$out"/cuda/libcufftw.so.*
du -sh "$out/torch" "$out/cuda" | sed 's/^/PyTorch GPU libraries laid out: /'
