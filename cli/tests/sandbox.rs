//! The sandbox: a hostile module can do nothing but score. Each attack gets
//! a clear error response, the next ordinary request succeeds, the server's
//! memory comes back, and the host's files and environment stay untouched.

mod common;

use std::path::PathBuf;

use common::{Server, guest, models, rss, serve_module, serve_module_env};
use serde_json::{Value, json};

/// A model directory of our own: the mlp model, and a symlink that points
/// out of it (to /etc).
fn model_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandscore-sandbox-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), dir.join("mlp.onnx")).expect("copy");
    std::os::unix::fs::symlink("/etc", dir.join("escape")).expect("symlink");
    dir
}

fn hostile(dir: &std::path::Path, extra: &[&str]) -> Server {
    serve_module("hostile", Some(dir), extra)
}

fn still_serving(server: &Server) {
    let r = server.post_json("/score", &json!({"action": "count"}));
    assert_eq!(
        r.status, 200,
        "the next ordinary request must succeed: {}",
        r.text
    );
}

#[test]
fn the_file_system_outside_the_model_directory_is_invisible() {
    let dir = model_dir("fs");
    let server = hostile(&dir, &[]);
    for path in [
        "/etc/passwd",
        "/models/../etc/passwd",
        "../etc/passwd",
        "/models/escape/passwd",
        "/proc/self/environ",
        "/models/../../../../etc/hostname",
    ] {
        let r = server.post_json("/score", &json!({"action": "read", "path": path}));
        assert_eq!(r.status, 500, "{path}: {}", r.text);
        assert!(
            r.message().contains(&format!("reading {path} refused")),
            "{path}: {}",
            r.text
        );
        assert!(!r.text.contains("root:"), "{path} leaked: {}", r.text);
        still_serving(&server);
    }
    let r = server.post_json("/score", &json!({"action": "list", "path": "/"}));
    assert_eq!(
        r.status, 500,
        "there is no root directory to list: {}",
        r.text
    );
    let r = server.post_json("/score", &json!({"action": "list", "path": "/models"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut entries: Vec<String> = serde_json::from_value(r.json()["entries"].clone()).unwrap();
    entries.sort();
    assert_eq!(entries, ["escape", "mlp.onnx"]);
    let r = server.post_json(
        "/score",
        &json!({"action": "read", "path": "/models/mlp.onnx"}),
    );
    assert_ne!(r.status, 404, "the model directory itself is readable");
}

#[test]
fn the_model_directory_is_read_only() {
    let dir = model_dir("ro");
    let server = hostile(&dir, &[]);
    for path in ["/models/pwned.txt", "/models/mlp.onnx"] {
        let r = server.post_json("/score", &json!({"action": "write", "path": path}));
        assert_eq!(r.status, 500, "{path}: {}", r.text);
        assert!(r.message().contains("refused"), "{}", r.text);
    }
    assert!(!dir.join("pwned.txt").exists());
    assert_eq!(
        std::fs::read(dir.join("mlp.onnx")).unwrap(),
        std::fs::read(models().join("mlp.onnx")).unwrap()
    );
    still_serving(&server);
}

#[test]
fn no_sockets_and_no_host_environment() {
    let dir = model_dir("net");
    let server = serve_module_env(
        "hostile",
        Some(&dir),
        &["--guest-env", "MODE=test"],
        &[("SANDSCORE_TEST_SECRET", "hunter2")],
    )
    .expect("start");
    let addr = server.base.trim_start_matches("http://").to_string();
    let r = server.post_json("/score", &json!({"action": "socket", "addr": addr}));
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.message()
            .contains(&format!("connecting to {addr} refused")),
        "{}",
        r.text
    );

    let r = server.post_json("/score", &json!({"action": "env"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut names: Vec<String> = r.json()["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["AZUREML_MODEL_DIR", "MODE"],
        "only what the deployment names"
    );
    assert!(!r.text.contains("hunter2"));
}

#[test]
fn hostile_guests_get_clear_errors_and_memory_comes_back() {
    let dir = model_dir("suite");
    // One instance: what it leaves behind is what the memory check sees.
    let server = hostile(&dir, &["--timeout", "1000", "--workers", "1"]);
    still_serving(&server);
    let before = rss(server.pid());
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"action": "loop"}), 504, "longer than"),
        (json!({"action": "alloc"}), 500, "trapped"),
        (json!({"action": "recurse"}), 500, "trapped"),
        (json!({"action": "panic"}), 500, "trapped"),
        (json!({"action": "big-body", "mb": 1024}), 500, "trapped"),
        (
            json!({"action": "big-body", "mb": 100}),
            500,
            "over the 67108864-byte limit",
        ),
        (
            json!({"action": "huge-tensor", "mb": 100}),
            500,
            "over the 67108864-byte limit",
        ),
        (
            json!({"action": "mismatched-tensor"}),
            400,
            "needs 256 bytes of data, got 12",
        ),
        (
            json!({"action": "wrong-type"}),
            400,
            "must be FP32, got INT64",
        ),
        (
            json!({"action": "graphs"}),
            500,
            "16 graphs are already open",
        ),
        (json!({"action": "tensors"}), 500, "256 tensors are alive"),
    ];
    for round in 0..2 {
        for (body, status, needle) in &cases {
            let r = server.post_json("/score", body);
            assert_eq!(r.status, *status, "round {round} {body}: {}", r.text);
            assert!(
                r.message().contains(needle),
                "round {round} {body}: {}",
                r.text
            );
            still_serving(&server);
        }
    }
    let after = rss(server.pid());
    assert!(
        after < before + (96 << 20),
        "resident memory grew from {} MiB to {} MiB",
        before >> 20,
        after >> 20
    );
}

#[test]
fn pooled_instances_keep_globals_and_isolated_ones_do_not() {
    let dir = model_dir("iso");
    let count = |server: &Server| {
        server
            .post_json("/score", &json!({"action": "count"}))
            .json()["count"]
            .as_u64()
            .unwrap()
    };
    let pooled = hostile(&dir, &[]);
    let seen: Vec<u64> = (0..3).map(|_| count(&pooled)).collect();
    assert_eq!(seen, [1, 2, 3], "one warm instance sees every request");
    let isolated = hostile(&dir, &["--isolation", "isolated"]);
    let seen: Vec<u64> = (0..3).map(|_| count(&isolated)).collect();
    assert_eq!(seen, [1, 1, 1], "each request gets a fresh instance");
}

#[test]
fn scratch_space_is_writable_and_capped() {
    let dir = model_dir("scratch");
    let server = hostile(&dir, &["--scratch", "2"]);
    let r = server.post_json(
        "/score",
        &json!({"action": "write", "path": "/scratch/a.bin", "mb": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.post_json(
        "/score",
        &json!({"action": "write", "path": "/scratch/b.bin", "mb": 3}),
    );
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.message().contains("over its 2097152-byte cap"),
        "{}",
        r.text
    );
    // The replaced instance starts with an empty scratch directory.
    let r = server.post_json("/score", &json!({"action": "list", "path": "/scratch"}));
    assert_eq!(r.json()["entries"], json!([]), "{}", r.text);
    let r = server.post_json(
        "/score",
        &json!({"action": "write", "path": "/models/x", "mb": 1}),
    );
    assert_eq!(r.status, 500, "{}", r.text);
}

#[test]
fn guest_output_is_logged_with_the_request_id() {
    let dir = model_dir("log");
    let server =
        serve_module_env("hostile", Some(&dir), &[], &[("RUST_LOG", "info")]).expect("start");
    let r = server.post_json_with_id("/score", &json!({"action": "stdout"}), "req-stdout-7");
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("hello from the guest's stdout"))
        .unwrap_or_else(|| panic!("no guest line in:\n{log}"));
    assert!(line.contains("req-stdout-7"), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains("and from its stderr") && l.contains("req-stdout-7")),
        "{log}"
    );
}

#[test]
fn refuses_to_run_as_root_without_allow_root() {
    if !common::running_as_root() {
        return; // Only meaningful where the tests run as root (CI does).
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sandscore"))
        .args(["check", "--no-cache", "--module"])
        .arg(guest("echo"))
        .env_remove("SANDSCORE_ALLOW_ROOT")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to run as root") && err.contains("--allow-root"),
        "{err}"
    );
}
