#!/usr/bin/env bash
# Lays out ONNX Runtime's CUDA build for the GPU image from the wheels pinned
# in deps/onnxruntime-gpu.lock (downloaded once into WHEELS, hashes checked):
#   OUT/libonnxruntime.so, OUT/libonnxruntime_providers_{cuda,shared}.so
#     (ORT finds its providers beside itself)
#   OUT/cuda/  the CUDA 13 runtime, cuBLAS, cuRAND, cuFFT, NVRTC and cuDNN 9
#     (the image puts this folder on LD_LIBRARY_PATH)
# Only shared libraries are taken; nothing of the wheels' Python is used.
# Usage: ort-gpu.sh LOCK WHEELS OUT
set -euo pipefail
lock=$1 wheels=$2 out=$3
mkdir -p "$wheels"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: -r "$lock" -d "$wheels"
rm -rf "$out" && mkdir -p "$out/cuda"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$wheels"/onnxruntime_gpu-*.whl 'onnxruntime/capi/libonnxruntime*' -d "$tmp"
cp "$tmp"/onnxruntime/capi/libonnxruntime.so.1.* "$out/libonnxruntime.so"
cp "$tmp"/onnxruntime/capi/libonnxruntime_providers_{cuda,shared}.so "$out/"
for w in "$wheels"/nvidia_*.whl; do
  unzip -q -o "$w" 'nvidia/*/lib/*.so*' -d "$tmp"
done
# Libraries nothing loads: the BLAS/FFTW drop-in replacements.
rm -f "$tmp"/nvidia/*/lib/libnvblas.so.* "$tmp"/nvidia/*/lib/libcufftw.so.*
cp "$tmp"/nvidia/*/lib/*.so* "$out/cuda/"
du -sh "$out" | sed 's/^/ONNX Runtime GPU libraries laid out: /'
