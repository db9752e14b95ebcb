//! The GPU switches, on a machine without a GPU (CI's): a model placed on
//! the GPU fails its load saying what is missing — never a silent move to
//! the CPU — unless the deployment allows the CPU fallback, and then it
//! serves the same answers as ONNX Runtime on the CPU. Running on a GPU
//! needs a machine with one and the CUDA build of ONNX Runtime.

mod common;

use common::{Server, models};

#[test]
fn a_gpu_model_without_cuda_says_what_is_missing() {
    let m = models();
    let (ok, err) = common::check_models(&m, &["--model-device", "mlp=gpu"]);
    assert!(!ok, "loaded on the GPU without one?");
    for needle in [
        "'mlp'",
        "CUDA",
        "sandscore/onnxruntime-gpu",
        "--gpu-fallback cpu",
    ] {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    let (ok, err) = common::check_models(&m, &["--model-device", "mlp=tpu"]);
    assert!(!ok && err.contains("NAME=cpu or NAME=gpu"), "{err}");
}

#[test]
fn the_cpu_fallback_serves_the_cpu_answers_and_says_so() {
    let m = models();
    let server = Server::start(&[
        "--model-dir",
        m.to_str().unwrap(),
        "--model-device",
        "mlp=gpu",
        "--gpu-fallback",
        "cpu",
    ]);
    common::v2_mlp_answers_like_ort(&server);
    assert!(server.log().contains("GPU unavailable"), "{}", server.log());
}

/// ONNX Runtime's CUDA build (`make ort-gpu`), where the Makefile says.
fn ort_gpu() -> std::path::PathBuf {
    std::env::var_os("SANDSCORE_ORT_GPU")
        .expect("SANDSCORE_ORT_GPU is not set: run with `make test-heavy` (it lays out ORT's CUDA build)")
        .into()
}

#[test]
#[ignore = "needs ONNX Runtime's CUDA build (2.2 GB): make test-heavy"]
fn the_cuda_build_names_the_library_it_misses_and_serves_cpu_models() {
    let m = models();
    let gpu = ort_gpu();
    let lib = gpu.join("libonnxruntime.so");
    let lib = lib.to_str().unwrap();
    // The CUDA libraries off the library path: the first the provider
    // links is named.
    let (ok, err) = common::check_models(&m, &["--ort-lib", lib, "--model-device", "mlp=gpu"]);
    assert!(!ok && err.contains("libcublasLt.so.13"), "{err}");
    // With them (as the GPU image sets LD_LIBRARY_PATH), only the host
    // driver is missing here: every CUDA library the image carries resolved.
    let out = common::binary()
        .env("LD_LIBRARY_PATH", gpu.join("cuda"))
        .args([
            "check",
            "--model-dir",
            m.to_str().unwrap(),
            "--ort-lib",
            lib,
        ])
        .args(["--model-device", "mlp=gpu"])
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("libcuda.so.1"),
        "{err}"
    );
    assert!(
        err.contains("'mlp'") && err.contains("--gpu-fallback cpu"),
        "{err}"
    );
    // CPU models on the CUDA build answer as on the CPU build.
    let server = Server::start(&["--model-dir", m.to_str().unwrap(), "--ort-lib", lib]);
    common::v2_mlp_answers_like_ort(&server);
}
