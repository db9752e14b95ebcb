#!/usr/bin/env bash
# Lays out TensorFlow's CUDA build for sandscore/tensorflow-gpu from the
# wheels pinned in deps/tensorflow-gpu.lock (downloaded once into WHEELS,
# hashes checked):
#   OUT/tensorflow/libtensorflow_cc.so.2, libtensorflow_framework.so.2
#     (the C API the backend loads; the CUDA build)
#   OUT/cuda/  the CUDA 12 runtime, cuBLAS, cuDNN 9, cuFFT, cuRAND,
#     cuSOLVER, cuSPARSE, NCCL, NVRTC, nvJitLink, CUPTI (TensorFlow opens
#     them at run time; the image puts this folder on LD_LIBRARY_PATH)
# Only shared libraries are taken; nothing of the wheels' Python is used.
# Usage: tf-gpu.sh LOCK WHEELS OUT
set -euo pipefail
lock=$1 wheels=$2 out=$3
mkdir -p "$wheels"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: --python-version 3.11 --platform manylinux_2_27_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
  -r "$lock" -d "$wheels"
rm -rf "$out" && mkdir -p "$out/tensorflow" "$out/cuda"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$wheels"/tensorflow-2.*.whl 'tensorflow/libtensorflow_cc.so.2' \
  'tensorflow/libtensorflow_framework.so.2' -d "$tmp"
mv "$tmp"/tensorflow/libtensorflow_cc.so.2 "$tmp"/tensorflow/libtensorflow_framework.so.2 "$out/tensorflow/"
for w in "$wheels"/nvidia_*_cu12-*.whl; do
  unzip -q -o "$w" 'nvidia/*/lib/*.so*' -d "$tmp" 2>/dev/null || true
done
# Libraries nothing loads: the BLAS/FFTW drop-in replacements.
rm -f "$tmp"/nvidia/*/lib/libnvblas.so.* "$tmp"/nvidia/*/lib/libcufftw.so.*
mv "$tmp"/nvidia/*/lib/*.so* "$out/cuda/"
du -sh "$out/tensorflow" "$out/cuda" | sed 's/^/TensorFlow GPU libraries laid out: /'
