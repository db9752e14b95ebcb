//! Python scoring scripts: Azure ML-style `score.py` files built by
//! `sandscore build` (componentize-py, `make python-guests`), served like
//! Rust modules and answering as they do; a script's exceptions become
//! errors with the line they came from, and the sandbox holds for Python
//! too (no files outside the models, no sockets, no threads).

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{Fixture, text};
use common::{Server, assert_close, column, expected, guest, models};
use serde_json::{Value, json};

/// A script built by `make python-guests`, from SANDSCORE_PY_GUESTS.
fn py_guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("SANDSCORE_PY_GUESTS")
        .map(PathBuf::from)
        .expect("SANDSCORE_PY_GUESTS is not set: run the tests with `make test`");
    let p = dir.join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run `make python-guests`",
        p.display()
    );
    p
}

fn serve(module: &Path, extra: &[&str]) -> Server {
    common::serve_path(module, None, extra, &[])
        .unwrap_or_else(|log| panic!("server did not become ready:\n{log}"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every number of `v`, rounded to f32 (Python writes an f32 output with
/// float64 digits, Rust with f32's shortest ones: the same values).
fn as_f32(v: &Value) -> Vec<f32> {
    match v {
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        Value::Array(a) => a.iter().flat_map(as_f32).collect(),
        other => panic!("not numbers: {other}"),
    }
}

#[test]
fn python_examples_answer_as_the_rust_examples_do() {
    let exp = expected();
    for (script, rust, model, label) in [
        ("onnx_mlp", "onnx_mlp", "mlp", "class"),
        ("iris_sklearn", "iris_sklearn", "iris", "label"),
    ] {
        let py = serve(&py_guest(script), &["--workers", "2"]);
        let rs = serve(&guest(rust), &[]);
        let body = json!({ "data": exp[model]["input"] });
        let (p, r) = (py.post_json("/score", &body), rs.post_json("/score", &body));
        assert_eq!((p.status, r.status), (200, 200), "{}\n{}", p.text, r.text);
        let (p, r) = (p.json(), r.json());
        assert_eq!(column(&p, label), column(&r, label), "{script}");
        let (pp, rp) = (column(&p, "probabilities"), column(&r, "probabilities"));
        assert_eq!(as_f32(&pp), as_f32(&rp), "{script}");
        // And both equal what ONNX Runtime's Python API computed.
        let truth = if model == "mlp" {
            &exp["mlp"]["ort"]["probabilities"]
        } else {
            &exp["iris"]["sklearn"]["probabilities"]
        };
        assert_close(&pp, truth, 1e-5);
        // Bad requests are the client's, in both.
        for bad in [json!({ "data": [] }), json!({ "data": [[1, 2]] })] {
            let (p, r) = (py.post_json("/score", &bad), rs.post_json("/score", &bad));
            assert_eq!(
                (p.status, r.status),
                (400, 400),
                "{bad}: {} / {}",
                p.text,
                r.text
            );
        }
        let broken = py.post("/score", "application/json", b"{not json".to_vec());
        assert_eq!(broken.status, 400, "{}", broken.text);
        assert!(broken.text.contains("invalid JSON"), "{}", broken.text);
    }
    // V2 infer: the script defines no infer, so the host runs the model.
    common::v2_mlp_answers_like_ort(&serve(&py_guest("onnx_mlp"), &[]));
}

#[test]
fn an_exception_is_a_500_with_its_last_line_and_the_server_goes_on() {
    let s = serve(&py_guest("faulty"), &[]);
    let ok = |s: &Server| {
        let r = s.post_json("/score", &json!({ "action": "ok" }));
        assert_eq!(
            (r.status, r.json()),
            (200, json!({ "ok": true })),
            "{}",
            r.text
        );
    };
    ok(&s);
    let r = s.post_json("/score", &json!({ "action": "raise" }));
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.text.contains("ValueError: the script gave up") && r.text.contains("faulty.py line"),
        "{}",
        r.text
    );
    ok(&s);
    let r = s.post_json("/score", &json!({ "action": "exit" }));
    assert!(
        r.status == 500 && r.text.contains("SystemExit: 3"),
        "{}",
        r.text
    );
    ok(&s);
    // A model's complaint about the input is the client's error.
    let r = s.post_json("/score", &json!({ "action": "bad-input" }));
    assert!(r.status == 400 && r.text.contains("shape"), "{}", r.text);
    // The whole traceback is in the log, with the script's own path.
    assert!(
        s.log().contains("Traceback") && s.log().contains("\"faulty.py\", line"),
        "{}",
        s.log()
    );
}

#[test]
fn the_sandbox_holds_for_python_files_sockets_and_threads() {
    let s = serve(&py_guest("faulty"), &[]);
    let size = std::fs::metadata(models().join("mlp.onnx")).unwrap().len();
    let r = s.post_json(
        "/score",
        &json!({ "action": "read", "path": "/models/mlp.onnx" }),
    );
    assert_eq!(
        (r.status, r.json()),
        (200, json!({ "bytes": size })),
        "{}",
        r.text
    );
    let host_file = std::env::current_exe().unwrap();
    for (body, says) in [
        (
            json!({ "action": "read", "path": "/etc/passwd" }),
            "FileNotFoundError",
        ),
        (
            json!({ "action": "read", "path": host_file }),
            "FileNotFoundError",
        ),
        (
            json!({ "action": "read", "path": "/models/../../etc/passwd" }),
            "Error",
        ),
        (
            json!({ "action": "write", "path": "/models/x.onnx" }),
            "PermissionError",
        ),
        (json!({ "action": "socket" }), "PermissionError"),
        (json!({ "action": "thread" }), "can't start new thread"),
    ] {
        let r = s.post_json("/score", &body);
        assert_eq!(r.status, 500, "{body}: {}", r.text);
        assert!(r.text.contains(says), "{body}: {}", r.text);
    }
    assert!(!models().join("x.onnx").exists());
    let r = s.post_json("/score", &json!({ "action": "ok" }));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn limits_too_small_for_cpython_are_refused_and_isolated_mode_warns() {
    let faulty = py_guest("faulty");
    let (ok, err) = common::check_models(
        &models(),
        &["--module", faulty.to_str().unwrap(), "--memory-limit", "8"],
    );
    assert!(
        !ok && err.contains("a Python module needs at least 16 MiB"),
        "{err}"
    );
    let s = serve(&faulty, &["--isolation", "isolated"]);
    for _ in 0..2 {
        let r = s.post_json("/score", &json!({ "action": "ok" }));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(
        s.log().contains("isolated mode with a Python module"),
        "{}",
        s.log()
    );
}

/// `sandscore build` of `script` (written into a fresh folder as score.py).
fn build(fx: &Fixture, name: &str, script: &str) -> std::process::Output {
    let dir = fx.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("score.py"), script).unwrap();
    let cache =
        std::env::var("SANDSCORE_PY_CACHE").expect("SANDSCORE_PY_CACHE: run with `make test`");
    common::binary()
        .args(["build", "--component", "--cache-dir", &cache])
        .arg(dir.join("score.py"))
        .output()
        .expect("run build")
}

#[test]
fn build_errors_name_the_script_and_its_line() {
    let fx = Fixture::new("py-build");
    let out = build(
        &fx,
        "syntax",
        "import json\n\ndef run(raw):\n    return json.loads(raw\n",
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("score.py\", line 4") && said.contains("SyntaxError"),
        "{said}"
    );
    assert!(!said.contains("Stack backtrace"), "{said}");
    let out = build(
        &fx,
        "toplevel",
        "import sandscore\nmodel = sandscore.Model.by_name('mlp')\n\ndef run(raw):\n    return 1\n",
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("load-by-name") && said.contains("init()"),
        "{said}"
    );
    let out = build(&fx, "norun", "def init():\n    pass\n");
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("defines no run(raw_data)"),
        "{said}"
    );
}

#[test]
fn a_script_given_as_the_module_is_built_on_start_then_cached() {
    let fx = Fixture::new("py-module");
    let cache = fx.dir.join("cache");
    let script = repo().join("examples/python/onnx-mlp/score.py");
    let check = || {
        common::binary()
            .args(["check", "--module", script.to_str().unwrap()])
            .args(["--model-dir", models().to_str().unwrap()])
            .args(["--cache-dir", cache.to_str().unwrap()])
            .env("SANDSCORE_COMPONENTIZE_PY", componentize_py())
            .env("SANDSCORE_WASI_PYTHON", "none")
            .output()
            .expect("run check")
    };
    let first = check();
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("building")
            && text(&first).contains("module     score (Compiled, Python)"),
        "{}",
        text(&first)
    );
    let again = check();
    assert!(again.status.success(), "{}", text(&again));
    assert!(!text(&again).contains("building"), "{}", text(&again));
    assert!(
        text(&again).contains("module     score (Cache, Python)"),
        "{}",
        text(&again)
    );
}

/// componentize-py as `make python-guests` installed it.
fn componentize_py() -> String {
    let cache =
        std::env::var("SANDSCORE_PY_CACHE").expect("SANDSCORE_PY_CACHE: run with `make test`");
    let p = Path::new(&cache).join("componentize-py-0.25.1/bin/componentize-py");
    assert!(
        p.is_file(),
        "{} is missing: run `make python-guests`",
        p.display()
    );
    p.display().to_string()
}
