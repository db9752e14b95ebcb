#!/usr/bin/env bash
# Assembles a CPU libtorch from the PyPI torch wheel (a CUDA build; PyPI has
# no CPU-only one) installed in a venv: the headers, the CPU libraries, the
# two CUDA runtime libraries libtorch_cpu links (real, from the nvidia-*
# wheels) and empty stubs for the CUDA libraries nothing on the CPU path
# calls. The result is what tch's build wants as LIBTORCH, and what the
# PyTorch image carries.
# Usage: libtorch.sh VENV OUT
#   OUT/include, OUT/lib: LIBTORCH for `cargo build` of runtime/torch
#   OUT/stubs:            extra stubs that let the venv's Python `import torch`
#                         (LD_LIBRARY_PATH=OUT/stubs:OUT/lib), for the generator
set -euo pipefail
venv=$1 out=$2
sp=$(echo "$venv"/lib/python3*/site-packages)
rm -rf "$out" && mkdir -p "$out/lib" "$out/stubs"
cp -r "$sp/torch/include" "$out/include"
for lib in libtorch_cpu.so libtorch.so libc10.so libgomp.so.1; do
  cp "$sp/torch/lib/$lib" "$out/lib/"
done
cp "$sp/nvidia/cu13/lib/libcudart.so.13" "$sp/nvidia/cu13/lib/libcupti.so.13" "$out/lib/"
# libtorch.so names libtorch_cuda.so; nothing on the CPU path calls into it.
stub() { echo "" | gcc -x c -shared -Wl,-soname,"$2" -o "$1/$2" -; }
stub "$out/lib" libtorch_cuda.so
# Python's torch._C also links these; an import needs them to exist.
for lib in libcudnn.so.9 libcufile.so.0 libnccl.so.2 libcusparse.so.12 libcufft.so.12 \
           libcusparseLt.so.0 libcurand.so.10 libcublas.so.13 libcublasLt.so.13 \
           libnvrtc.so.13 libnvshmem_host.so.3; do
  stub "$out/stubs" "$lib"
done
du -sh "$out/lib" | sed 's/^/libtorch (CPU) assembled: /'
