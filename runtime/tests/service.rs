//! The service in process: direct inference on a fake backend, the
//! module → model fallback, the pool's replacement of a failed instance,
//! deadlines, and wasi-nn's limits, all without a server or a native
//! library.

mod common;

use std::time::{Duration, Instant};

use common::{fake_models, fp32, guest, service};
use sandscore_runtime::service::{
    ErrorKind, InferRequest, ModelControl, ScoreRequest, Service, ServiceConfig,
};
use serde_json::{Value, json};

fn infer(model: &str, x: &[f32]) -> InferRequest {
    InferRequest {
        model: model.into(),
        version: None,
        inputs: vec![fp32("x", x)],
    }
}

fn score(action: Value) -> ScoreRequest {
    ScoreRequest {
        body: action.to_string().into_bytes(),
        content_type: "application/json".into(),
        headers: Vec::new(),
        method: "POST",
        query: String::new(),
    }
}

/// The hostile module's answer to one request.
async fn act(
    service: &sandscore_runtime::service::Service,
    action: Value,
) -> Result<sandscore_runtime::service::ScoreAnswer, sandscore_runtime::service::ServiceError> {
    service.score(score(action), "t".into()).await
}

fn body(answer: &sandscore_runtime::service::ScoreAnswer) -> Value {
    serde_json::from_slice(&answer.body).expect("a JSON answer")
}

fn with_module(module: &str, dir: std::path::PathBuf) -> ServiceConfig {
    ServiceConfig {
        module: Some(guest(module)),
        model_dir: Some(dir),
        ..ServiceConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_answers_directly_and_failures_keep_their_kind() {
    let dir = fake_models(
        "direct",
        &[("echo", "echo"), ("bad", "error"), ("boom", "panic")],
    );
    let service = service(ServiceConfig {
        model_dir: Some(dir),
        ..ServiceConfig::default()
    });
    let names: Vec<String> = service.models().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["bad", "boom", "echo"]);
    let m = service.model("echo", Some("1")).expect("echo, version 1");
    assert_eq!(
        (m.backend.as_str(), m.platform.as_str()),
        ("fake", "fake_platform")
    );
    assert_eq!(m.inputs[0].datatype, "FP32");

    let answer = service
        .infer(infer("echo", &[1.5, -2.0]), "t".into())
        .await
        .expect("echo");
    assert_eq!(answer.outputs[0].name, "y");
    assert_eq!(answer.outputs[0].tensor, fp32("x", &[1.5, -2.0]).tensor);
    assert_eq!(answer.model_version.as_deref(), Some("1"));

    let e = service
        .infer(infer("nope", &[1.0]), "t".into())
        .await
        .expect_err("unknown");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = service
        .infer(
            InferRequest {
                version: Some("7".into()),
                ..infer("echo", &[1.0])
            },
            "t".into(),
        )
        .await
        .expect_err("no version 7");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = service
        .infer(infer("bad", &[1.0]), "t".into())
        .await
        .expect_err("error");
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("fake model 'error' failed"), "{e}");
    let e = service
        .infer(infer("boom", &[1.0]), "t".into())
        .await
        .expect_err("panic");
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("panicked"), "{e}");
    // The panic cost that request only.
    service
        .infer(infer("echo", &[3.0]), "t".into())
        .await
        .expect("still answering");

    let e = act(&service, json!({})).await.expect_err("no module");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_without_infer_hands_tensors_to_the_model() {
    let dir = fake_models("fallback", &[("echo", "echo")]);
    let service = service(with_module("echo", dir));
    let answer = service
        .infer(infer("echo", &[4.0]), "t".into())
        .await
        .expect("the echo module has no infer: the model answers");
    assert_eq!(answer.outputs[0].tensor, fp32("x", &[4.0]).tensor);
    let answer = act(&service, json!({"hello": 1})).await.expect("score");
    assert_eq!(answer.status, 200);
    assert_eq!(body(&answer), json!({"echo": {"hello": 1}}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapped_instance_is_replaced_and_a_deadline_is_a_timeout() {
    let dir = fake_models("pool", &[("mlp", "echo")]);
    let mut config = with_module("hostile", dir);
    config.sandbox.timeout = Duration::from_millis(300);
    let service = service(config);
    let count = |a: &sandscore_runtime::service::ScoreAnswer| body(a)["count"].clone();
    let first = act(&service, json!({"action": "count"}))
        .await
        .expect("count");
    let second = act(&service, json!({"action": "count"}))
        .await
        .expect("count");
    assert_ne!(
        count(&first),
        count(&second),
        "one warm instance serves both"
    );

    let e = act(&service, json!({"action": "panic"}))
        .await
        .expect_err("trap");
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("trapped"), "{e}");
    let fresh = act(&service, json!({"action": "count"}))
        .await
        .expect("count");
    assert_eq!(
        count(&fresh),
        count(&first),
        "a fresh instance counts from the start"
    );

    let started = Instant::now();
    let e = act(&service, json!({"action": "loop"}))
        .await
        .expect_err("loop");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = act(&service, json!({"action": "sleep", "mb": 60_000}))
        .await
        .expect_err("asleep in WASI");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    act(&service, json!({"action": "count"}))
        .await
        .expect("count");
}

#[tokio::test(flavor = "multi_thread")]
async fn wasi_nn_limits_hold_per_instance() {
    let dir = fake_models("limits", &[("mlp", "echo")]);
    let mut config = with_module("hostile", dir);
    config.sandbox.nn.max_graphs = 3;
    config.sandbox.nn.max_tensors = 8;
    let service = service(config);
    let e = act(&service, json!({"action": "graphs"}))
        .await
        .expect_err("graphs");
    assert!(
        e.message.contains("graph 4"),
        "the fourth graph is refused: {e}"
    );
    assert!(e.message.contains("3 graphs are already open"), "{e}");
    let e = act(&service, json!({"action": "tensors"}))
        .await
        .expect_err("tensors");
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("8 tensors are alive"), "{e}");
    let e = act(&service, json!({"action": "leak-errors"}))
        .await
        .expect_err("errors");
    assert!(e.message.contains("error resources are alive"), "{e}");
    act(&service, json!({"action": "count"}))
        .await
        .expect("count");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_triton_layout_serves_the_versions_its_policy_names() {
    let dir = fake_models("triton", &[]);
    let version = |model: &str, v: u32, behaviour: &str| {
        let d = dir.join(model).join(v.to_string());
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("model.fake"), behaviour).expect("write");
    };
    // `both` serves every version (its config says so); `newest`, without
    // a config, only its highest, as Triton does.
    version("both", 1, "echo");
    version("both", 2, "error");
    std::fs::write(
        dir.join("both").join("config.pbtxt"),
        "name: \"both\"\nmax_batch_size: 4\nversion_policy: { all: {} }\n",
    )
    .expect("config");
    version("newest", 1, "error");
    version("newest", 3, "echo");
    let service = service(ServiceConfig {
        model_dir: Some(dir),
        ..ServiceConfig::default()
    });
    assert_eq!(
        service.model("both", None).expect("both").versions,
        ["1", "2"]
    );
    assert_eq!(
        service.model("newest", None).expect("newest").versions,
        ["3"]
    );
    assert_eq!(
        service
            .model("newest", Some("1"))
            .expect_err("not served")
            .kind,
        ErrorKind::NotFound
    );
    let at = |model: &str, v: Option<&str>| InferRequest {
        version: v.map(str::to_string),
        ..infer(model, &[2.0])
    };
    // Each version is its own graph; no version means the highest.
    let one = service
        .infer(at("both", Some("1")), "t".into())
        .await
        .expect("v1");
    assert_eq!(one.model_version.as_deref(), Some("1"));
    let two = service
        .infer(at("both", Some("2")), "t".into())
        .await
        .expect_err("v2");
    assert!(two.message.contains("fake model 'error' failed"), "{two}");
    let latest = service
        .infer(at("both", None), "t".into())
        .await
        .expect_err("v2");
    assert!(latest.message.contains("failed"), "{latest}");
    let newest = service
        .infer(at("newest", None), "t".into())
        .await
        .expect("v3");
    assert_eq!(newest.model_version.as_deref(), Some("3"));
    // The config is the file's, completed from the model.
    let config = service.model_config_json("both", None).expect("config");
    assert_eq!(config["max_batch_size"], 4);
    assert_eq!(config["input"][0]["name"], "x");
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
}

/// A model's state and reason in the repository index.
fn index_state(service: &Service, name: &str) -> Option<(&'static str, String)> {
    service
        .index()
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| (e.state, e.reason))
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_model_control_loads_and_unloads_while_serving() {
    let dir = fake_models("explicit", &[("first", "echo"), ("second", "echo")]);
    // A Triton-layout model whose version holds nothing: its load fails.
    std::fs::create_dir_all(dir.join("broken").join("1")).expect("mkdir");
    let service = service(ServiceConfig {
        model_dir: Some(dir.clone()),
        model_control: ModelControl::Explicit(vec!["first".into()]),
        ..ServiceConfig::default()
    });
    assert_eq!(service.model_names(), ["first"]);
    let state = |name: &str| index_state(&service, name);
    assert_eq!(state("second"), Some(("UNAVAILABLE", "not loaded".into())));

    service.load_model("second").await.expect("load");
    service
        .infer(infer("second", &[1.0]), "t".into())
        .await
        .expect("served");
    // A model copied in after start loads too.
    std::fs::write(dir.join("late.fake"), "echo").expect("copy");
    service.load_model("late").await.expect("load a new one");
    assert_eq!(service.model_names(), ["first", "late", "second"]);

    service.unload_model("first").expect("unload");
    let e = service
        .infer(infer("first", &[1.0]), "t".into())
        .await
        .expect_err("gone");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(state("first"), Some(("UNAVAILABLE", "unloaded".into())));

    let e = service.load_model("broken").await.expect_err("broken");
    assert_eq!(e.kind, ErrorKind::BadRequest);
    let (s, why) = state("broken").expect("in the index");
    assert!(
        s == "UNAVAILABLE" && why.contains("holds no model file"),
        "{why}"
    );
    let e = service.load_model("nowhere").await.expect_err("missing");
    assert!(e.message.contains("no such model"), "{e}");

    // A folder of several model files names each FOLDER_STEM; each loads.
    std::fs::create_dir_all(dir.join("pair")).expect("mkdir");
    for m in ["a", "b"] {
        std::fs::write(dir.join("pair").join(format!("{m}.fake")), "echo").expect("write");
    }
    service
        .load_model("pair_b")
        .await
        .expect("one of a folder's models");
    service
        .infer(infer("pair_b", &[1.0]), "t".into())
        .await
        .expect("served");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_explicit_control_loading_is_refused_and_says_how() {
    let dir = fake_models("none", &[("only", "echo")]);
    let service = service(ServiceConfig {
        model_dir: Some(dir),
        ..ServiceConfig::default()
    });
    let e = service.load_model("only").await.expect_err("mode none");
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.message.contains("--model-control-mode explicit"), "{e}");
    assert!(service.unload_model("only").is_err());
    service
        .infer(infer("only", &[1.0]), "t".into())
        .await
        .expect("still served");
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_mode_follows_the_repository() {
    let dir = fake_models("poll", &[("kept", "echo"), ("going", "echo")]);
    let service = service(ServiceConfig {
        model_dir: Some(dir.clone()),
        model_control: ModelControl::Poll(Duration::from_millis(100)),
        ..ServiceConfig::default()
    });
    assert_eq!(service.model_names(), ["going", "kept"]);
    std::fs::write(dir.join("coming.fake"), "echo").expect("add");
    std::fs::remove_file(dir.join("going.fake")).expect("remove");
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.model_names() != ["coming", "kept"] {
        assert!(Instant::now() < deadline, "{:?}", service.model_names());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service
        .infer(infer("coming", &[1.0]), "t".into())
        .await
        .expect("loaded by the poll");

    // A model whose file changes is loaded again: `kept` now fails.
    std::fs::write(dir.join("kept.fake"), "changed").expect("change");
    let deadline = Instant::now() + Duration::from_secs(10);
    while service
        .infer(infer("kept", &[1.0]), "t".into())
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the change was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = service
        .infer(infer("kept", &[1.0]), "t".into())
        .await
        .expect_err("the new file");
    assert!(e.message.contains("fake model 'changed' failed"), "{e}");

    // A model that fails to load is in the index with why, and is tried
    // again once its file changes (as when it was copied in half-written).
    std::fs::write(dir.join("late.fake"), "unloadable").expect("add");
    let state = |name: &str| index_state(&service, name);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state("late").is_some_and(|(_, why)| why.contains("never loads")) {
        assert!(Instant::now() < deadline, "{:?}", state("late"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state("late").map(|s| s.0), Some("UNAVAILABLE"));
    std::fs::write(dir.join("late.fake"), "echo").expect("fix");
    let deadline = Instant::now() + Duration::from_secs(10);
    while state("late").map(|s| s.0) != Some("READY") {
        assert!(Instant::now() < deadline, "{:?}", state("late"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service
        .infer(infer("late", &[1.0]), "t".into())
        .await
        .expect("loaded once fixed");
}
