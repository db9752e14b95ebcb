//! Attacks at the sandbox's native edge: what a hostile module does with the
//! host calls that reach native code and host resources, and what a hostile
//! client does with the decoders. Each attack is followed by the same
//! questions: is the server alive, does the next ordinary request succeed,
//! is memory back near its baseline, and was the error clear (and free of
//! host details)?
//!
//! The crafted models come from `tests/models/make_hostile.py`, whose
//! `--verify` run shows what each does to the native library unchecked.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, models, rss, serve_module};
use serde_json::{Value, json};

/// The crafted models (`make models`), from SANDSCORE_HOSTILE_MODELS.
fn hostile_models() -> PathBuf {
    let dir = std::env::var_os("SANDSCORE_HOSTILE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models-hostile")
        });
    assert!(
        dir.join("hostile.json").exists(),
        "{} is missing: run the tests with `make test`",
        dir.display()
    );
    dir
}

/// The crafted models' index.
fn catalogue() -> Vec<Value> {
    let text =
        std::fs::read_to_string(hostile_models().join("hostile.json")).expect("hostile.json");
    serde_json::from_str(&text).expect("hostile.json parses")
}

/// A model directory with mlp.onnx and every crafted model (as `.bin`, so
/// none is preloaded: the module hands their bytes to `load`).
fn model_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandscore-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), dir.join("mlp.onnx")).expect("copy");
    for entry in std::fs::read_dir(hostile_models()).expect("hostile models") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "bin") {
            std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// A model directory as an operator might set it up: the mlp, and one
/// crafted model under a model's name.
fn operator_dir(tag: &str, crafted: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandscore-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), dir.join("mlp.onnx")).expect("copy");
    std::fs::copy(hostile_models().join(crafted), dir.join(name)).expect("copy");
    dir
}

/// The faulty guest's `load` action on one crafted file.
fn load(server: &Server, model: &Value) -> common::Reply {
    let shape: Vec<u64> = serde_json::from_value(model["input"]["shape"].clone()).expect("shape");
    let n: u64 = shape.iter().product();
    let encoding = if model["kind"] == "onnx" {
        "onnx"
    } else {
        "autodetect"
    };
    server.post_json(
        "/score",
        &json!({
            "action": "load",
            "encoding": encoding,
            "files": [model["file"]],
            "input": {"name": model["input"]["name"], "shape": shape, "data": vec![0.0; n as usize]},
        }),
    )
}

/// The mlp answers through the module, as before the attack.
fn still_serving(server: &Server) {
    let r = server.post_json("/score", &json!({"action": "load-bytes"}));
    assert_eq!(
        r.status, 200,
        "the next ordinary request must succeed: {}",
        r.text
    );
}

fn alive(server: &Server) -> bool {
    Path::new(&format!("/proc/{}", server.pid())).exists()
        && server.get("/v2/health/live").status == 200
}

/// The server's child processes (guest-model workers).
fn children(server: &Server) -> usize {
    let pid = server.pid();
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().count())
        .unwrap_or(0)
}

#[test]
fn onnx_external_data_never_reads_a_host_file() {
    let dir = model_dir("external");
    let server = serve_module("faulty", Some(&dir), &[]);
    let leaks: Vec<Value> = catalogue()
        .into_iter()
        .filter(|m| m["expect"] == "leak")
        .collect();
    assert!(leaks.len() >= 8, "every hiding place is tried: {leaks:?}");
    for model in leaks {
        let r = load(&server, &model);
        let file = &model["file"];
        assert_eq!(r.status, 500, "{file}: {}", r.text);
        assert!(r.message().contains("external file"), "{file}: {}", r.text);
        // Not the file's bytes, not the server's working directory.
        let cwd = std::env::current_dir().expect("cwd");
        assert!(
            !r.text.contains(&*cwd.to_string_lossy()),
            "{file}: {}",
            r.text
        );
        assert!(
            !r.text.contains("114"),
            "{file} looks like it leaked 'r' bytes: {}",
            r.text
        );
        still_serving(&server);
    }
}

#[test]
fn a_model_directory_keeps_external_data_inside_it() {
    let dir = operator_dir("dir", "onnx-external-dotdot.bin", "steal.onnx");
    let out = common::check_models(&dir, &[]);
    assert!(
        !out.0,
        "an operator's model may not read outside its folder: {}",
        out.1
    );
    assert!(out.1.contains("outside the model's folder"), "{}", out.1);
    assert!(!out.1.contains("root:"), "{}", out.1);
}

#[test]
fn crafted_xgboost_models_are_refused_before_libxgboost_reads_them() {
    let dir = model_dir("xgboost");
    let server = serve_module("faulty", Some(&dir), &[]);
    let baseline = rss(server.pid());
    let crafted: Vec<Value> = catalogue()
        .into_iter()
        .filter(|m| m["kind"] == "xgboost")
        .collect();
    assert!(crafted.len() >= 25, "{crafted:?}");
    for model in crafted {
        let r = load(&server, &model);
        let (file, expect) = (&model["file"], &model["expect"]);
        assert_eq!(r.status, 500, "{file} ({expect}): {}", r.text);
        let m = r.message();
        assert!(
            m.contains("inconsistent")
                || m.contains("not accepted from bytes")
                || m.contains("not an XGBoost JSON model"),
            "{file} ({expect}) must be refused by the check: {m}"
        );
        assert!(alive(&server), "{file} killed the server");
        still_serving(&server);
    }
    // xgb-cat-huge-category alone costs libxgboost ~2.6 GiB: refused, it costs nothing.
    assert!(
        rss(server.pid()) < baseline + (200 << 20),
        "memory came back"
    );
}

#[test]
fn a_guest_loaded_model_past_the_deadline_is_stopped_and_the_worker_freed() {
    let dir = model_dir("deadline");
    let server = serve_module("faulty", Some(&dir), &["--timeout", "2000"]);
    let forever = catalogue()
        .into_iter()
        .find(|m| m["file"] == "onnx-loop-forever.bin")
        .expect("loop");
    let started = Instant::now();
    let r = load(&server, &forever);
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the deadline reached into native compute (took {:?})",
        started.elapsed()
    );
    // The worker running it was killed, and the instance replaced.
    let wait = Instant::now();
    while children(&server) > 0 && wait.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(children(&server), 0, "the worker process is gone");
    still_serving(&server);
}

#[test]
fn a_guest_asleep_in_wasi_is_woken_at_the_deadline() {
    // One worker: if the sleeper held it, the next request would wait.
    let server = serve_module("hostile", None, &["--timeout", "1000", "--workers", "1"]);
    let started = Instant::now();
    let r = server.post_json("/score", &json!({"action": "sleep", "mb": 60_000}));
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a blocking WASI sleep ends at the deadline (took {:?})",
        started.elapsed()
    );
    let started = Instant::now();
    let r = server.post_json("/score", &json!({"action": "count"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the worker is free again"
    );
    // A sleep inside the deadline still sleeps its full time.
    let r = server.post_json("/score", &json!({"action": "sleep", "mb": 300}));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn an_operator_model_past_the_deadline_is_stopped_inside_onnx_runtime() {
    // In-process ORT: its terminate flag, set by a timer at the deadline.
    let dir = operator_dir("loop", "onnx-loop-forever.bin", "loop.onnx");
    let server = common::serve_models_within(&dir, 1500);
    let body =
        json!({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [0.0]}]});
    let started = Instant::now();
    let r = server.post_json("/v2/models/loop/infer", &body);
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "stopped at the deadline (took {:?})",
        started.elapsed()
    );
    assert!(r.message().contains("deadline"), "{}", r.text);
    // The one worker is free: the next inference answers at once.
    common::v2_mlp_answers_like_ort(&server);
}

#[test]
fn model_outputs_and_error_resources_are_bounded_per_instance() {
    let dir = model_dir("memory");
    let server = serve_module("faulty", Some(&dir), &[]);
    let hostile = serve_module("hostile", Some(&dir), &[]);
    let baseline = rss(server.pid());
    // 512 MiB from a 202-byte model: over the instance's 256 MiB budget.
    let huge = catalogue()
        .into_iter()
        .find(|m| m["file"] == "onnx-huge-output.bin")
        .expect("huge");
    let r = load(&server, &huge);
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.message().contains("over the"), "{}", r.text);
    still_serving(&server);
    assert!(
        rss(server.pid()) < baseline + (200 << 20),
        "the output never reached the server"
    );
    // Error resources the module never drops.
    let before = rss(hostile.pid());
    let r = hostile.post_json("/score", &json!({"action": "leak-errors", "mb": 4096}));
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.message().contains("error resources are alive"),
        "{}",
        r.text
    );
    let r = hostile.post_json("/score", &json!({"action": "count"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        rss(hostile.pid()) < before + (200 << 20),
        "their memory was freed with the instance"
    );
}

#[test]
fn logs_cannot_be_forged_and_statuses_and_errors_are_bounded() {
    let server =
        common::serve_module_env("hostile", None, &[], &[("RUST_LOG", "info")]).expect("start");
    let r = server.post_json_with_id(
        "/score",
        &json!({"action": "forge-log"}),
        "abc method=FORGED",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(
        r.header("x-request-id"),
        Some("abc method=FORGED"),
        "an unsafe id is replaced"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert!(log.contains("harmless\\nINFO forged line"), "{log}");
    assert!(log.contains("\\r\\u{0}\\u{1b}[2Jforged"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("INFO forged")), "{log}");
    assert!(!log.contains("method=FORGED"), "{log}");
    for status in [600, 999, 100] {
        let r = server.post_json("/score", &json!({"action": "status", "mb": status}));
        assert_eq!(r.status, 500, "{status}: {}", r.text);
        assert!(r.message().contains("invalid HTTP status"), "{}", r.text);
    }
    let r = server.post_json("/score", &json!({"action": "huge-error", "mb": 70}));
    assert_eq!(r.status, 500);
    assert!(
        r.text.len() < 16 << 10,
        "a 70 MiB message is capped: {} bytes",
        r.text.len()
    );
    assert!(server.log().len() < 4 << 20, "and so is its log line");
    let r = server.post_json("/score", &json!({"action": "count"}));
    assert_eq!(r.status, 200);
}

#[test]
fn v2_decoding_is_bounded_and_duplicates_are_refused() {
    let server = Server::start(&["--model-dir", models().to_str().expect("path")]);
    let input =
        |i: usize| json!({"name": format!("x{i}"), "shape": [1], "datatype": "FP32", "data": [1]});
    let many: Vec<Value> = (0..40_000).map(input).collect();
    let r = server.post_json("/v2/models/mlp/infer", &json!({"inputs": many}));
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert!(r.text.contains("at most 1024"), "{}", r.text);
    let one = json!({"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]});
    let outputs: Vec<Value> = (0..20_000)
        .map(|_| json!({"name": "probabilities"}))
        .collect();
    let r = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": [one], "outputs": outputs}),
    );
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    let r = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": [one], "outputs": [{"name": "probabilities"}, {"name": "probabilities"}]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("more than once"), "{}", r.text);
    assert_eq!(server.get("/v2/health/live").status, 200);
}

#[test]
fn the_head_limit_is_the_documented_one_and_unread_answers_are_dropped() {
    let server = serve_module(
        "hostile",
        None,
        &["--max-header", "64", "--write-timeout", "1000"],
    );
    let head = |kb: usize| {
        let r = common::agent()
            .post(server.url("/score"))
            .header("x-pad", "a".repeat(kb << 10))
            .send_json(json!({"action": "count"}));
        match r {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(s)) => s,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(head(60), 200);
    assert_eq!(head(70), 431);
    // A client that asks for 50 MiB and never reads it (after one that
    // does, so the instance's own memory has grown already).
    let r = server.post_json("/score", &json!({"action": "big-body", "mb": 50}));
    assert_eq!(r.status, 200);
    let before = rss(server.pid());
    let addr = server.url("").trim_start_matches("http://").to_string();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        let body = json!({"action": "big-body", "mb": 50}).to_string();
        write!(
            s,
            "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        sockets.push(s);
    }
    std::thread::sleep(Duration::from_secs(4));
    // The server gave up on them: reading now ends (closed), it does not hang.
    for mut s in sockets {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut sink = Vec::new();
        let read = s.read_to_end(&mut sink);
        assert!(
            !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "the connection was closed: {read:?}"
        );
        assert!(sink.len() < 50 << 20, "the whole answer was never sent");
    }
    assert!(
        rss(server.pid()) < before + (100 << 20),
        "their answers' memory was freed"
    );
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "count"}))
            .status,
        200
    );
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let server = Server::start(&[
        "--model-dir",
        models().to_str().expect("path"),
        "--max-connections",
        "2",
        "--header-timeout",
        "60000",
    ]);
    let addr = server.url("").trim_start_matches("http://").to_string();
    let idle: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = std::net::TcpStream::connect(&addr).expect("the kernel queues it");
    third
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    third
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut first = [0u8; 1];
    let waited = third.read(&mut first);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "past the cap a connection is not served: {waited:?}"
    );
    drop(idle);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    third.read_to_string(&mut answer).expect("answered");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served once a slot is free: {answer}"
    );
}
