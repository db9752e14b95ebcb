//! What the model directory holds decides what loads it, and a model that
//! cannot be read stops the start with the model's name, the framework and
//! the image that reads it — never a silent skip. Fake model files are
//! enough here: the failure comes before or at the backend.

mod common;

use std::path::Path;

use common::check_models as check;

/// A fresh directory holding `files` (relative path, bytes).
fn model_dir(tag: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sandscore-discovery-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, bytes) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

#[test]
fn a_missing_library_names_the_image_that_has_it() {
    let mlp = std::fs::read(common::models().join("mlp.onnx")).unwrap();
    let cases: [(&str, &[u8], &str, &str); 4] = [
        ("mlp.onnx", &mlp, "--ort-lib", "sandscore/onnxruntime-cpu"),
        ("net.pt", b"x", "--torch-lib", "sandscore/pytorch-cpu"),
        (
            "classifier/saved_model.pb",
            b"x",
            "--tensorflow-lib",
            "sandscore/tensorflow-cpu",
        ),
        (
            "mobile.tflite",
            b"x",
            "--litert-lib",
            "sandscore/tflite-cpu",
        ),
    ];
    for (file, bytes, flag, image) in cases {
        let dir = model_dir("lib", &[(file, bytes)]);
        let (ok, err) = check(&dir, &[flag, "/nonexistent/lib.so"]);
        let name = Path::new(file)
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| {
                s.trim_end_matches(".onnx")
                    .trim_end_matches(".tflite")
                    .trim_end_matches(".pt")
            })
            .unwrap();
        assert!(!ok, "{file} loaded without its library");
        assert!(
            err.contains(&format!("'{name}'")) && err.contains(image),
            "{file}: {err}"
        );
        assert_eq!(err.matches("not found").count(), 1, "said once: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn files_that_are_not_models_are_left_alone() {
    // expected.json beside XGBoost models is JSON but not a booster.
    let dir = model_dir(
        "other",
        &[
            ("notes.json", br#"{"hello": "world"}"#),
            ("README.md", b"# models"),
        ],
    );
    let (ok, err) = check(&dir, &[]);
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
