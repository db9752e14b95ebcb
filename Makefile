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
RELEASE := $(CARGO_TARGET_DIR)/release
GUESTS  := $(CARGO_TARGET_DIR)/wasm32-wasip2/guest
MODELS  := $(CARGO_TARGET_DIR)/models
ORT_LIB := $(RELEASE)/libonnxruntime.so
PORT    ?= 5001

GUEST_CRATES := echo onnx-mlp iris-sklearn token-embed faulty hostile not-a-scorer

export SANDSCORE_MODELS := $(MODELS)
export SANDSCORE_GUESTS := $(GUESTS)
export ORT_DYLIB_PATH := $(ORT_LIB)

.PHONY: all setup venv wasm-target build guests models ort demo test clean fuzz soak images test-images readme-table

all: build guests models ort

setup: venv wasm-target

# Python packages pinned with sha256 in deps/requirements.lock: the model
# generator and the ONNX Runtime library.
venv: $(VENV)/.installed
$(VENV)/.installed: deps/requirements.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deps/requirements.lock
	touch $@

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

build:
	cargo build --release --locked -p sandscore

guests: wasm-target
	cargo build --locked --profile guest --target wasm32-wasip2 $(addprefix -p ,$(GUEST_CRATES))

models: $(MODELS)/expected.json
$(MODELS)/expected.json: examples/models/make_models.py $(VENV)/.installed
	$(PY) examples/models/make_models.py $(MODELS)

# libonnxruntime from the pinned wheel, beside the sandscore binary.
ort: $(ORT_LIB)
$(ORT_LIB): $(VENV)/.installed
	mkdir -p $(RELEASE)
	cp $$(ls $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n1) $@

demo: all
	scripts/demo.sh $(RELEASE)/sandscore $(GUESTS)/onnx_mlp.wasm $(MODELS) examples/onnx-mlp/request.json $(PORT)

test: all
	python3 images/manifest.py check README.md
	cargo test --release --locked -p sandscore -p sandscore-codec -p sandscore-guest

clean:
	cargo clean

# Fuzz the request decoders for FUZZ_SECONDS each (nightly + cargo-fuzz;
# installs cargo-fuzz on first use). Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
	cd fuzz && for t in v2_request score_query; do \
	  cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

# Saturate a local server for MINUTES (bounded; stops by itself). Not part of `make test`.
MINUTES ?= 2
CONCURRENCY ?= 16
WORKERS ?= 2
soak: all
	cargo build --release --locked -p sandscore --example soak
	scripts/soak.sh $(RELEASE)/sandscore $(GUESTS)/onnx_mlp.wasm $(MODELS) $(RELEASE)/examples/soak $(MINUTES) $(CONCURRENCY) $(WORKERS)

# Container images (images/images.toml). Starts dockerd when no engine answers.
IMAGES_OUT := $(CARGO_TARGET_DIR)/images
images: all
	images/install-engine.sh
	images/engine.sh images/build.sh $(RELEASE)/sandscore $(ORT_LIB) $(IMAGES_OUT)

test-images: images
	images/engine.sh cargo test --release --locked -p sandscore --test images -- --ignored --nocapture --test-threads 1

# The README's image table, from the manifest.
readme-table:
	python3 images/manifest.py write README.md
