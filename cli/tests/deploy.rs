//! SDK-driven deployment, local target, through the CLI a user runs:
//! deploy a sandscore.toml, list, invoke, read logs, delete; broken
//! deployments fail with their reason and leave nothing running.

mod common;

use std::path::Path;

use common::fixture::{Fixture, text, toml};
use common::{assert_close, column, expected, guest, models};
use serde_json::{Value, json};

#[test]
fn deploy_list_invoke_logs_delete() {
    let fx = Fixture::new("cycle");
    let file = fx.file(&toml("mlp-demo", &guest("onnx_mlp"), &models(), ""));
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let url = stdout
        .split_whitespace()
        .nth(1)
        .expect("name and url")
        .to_string();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("validating module and models"),
        "progress shown"
    );

    let list = fx.run(&["endpoints"]);
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        listing.contains("mlp-demo") && listing.contains("running") && listing.contains(&url),
        "{listing}"
    );

    let exp = expected();
    let request = fx.dir.join("request.json");
    std::fs::write(&request, json!({ "data": exp["mlp"]["input"] }).to_string())
        .expect("write request");
    let out = fx.run(&["invoke", "mlp-demo", "--data", request.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_close(
        &column(&answer, "probabilities"),
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );

    let logs = fx.run(&["logs", "mlp-demo"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("listening on"),
        "{}",
        text(&logs)
    );

    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.state.join("mlp-demo.json")).unwrap())
            .unwrap();
    let pid = record["pid"].as_u64().unwrap();
    let out = fx.run(&["delete", "mlp-demo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deleted mlp-demo"), "{}", text(&out));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "server still running"
    );
    assert!(!String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).contains("mlp-demo"));
    let out = fx.run(&["invoke", "mlp-demo", "--data", request.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("no deployment named 'mlp-demo'"),
        "{}",
        text(&out)
    );
}

#[test]
fn broken_deployments_fail_with_their_reason_and_leave_nothing_running() {
    let fx = Fixture::new("broken");
    // A module that is not a scorer.
    let file = fx.file(&toml("bad-module", &guest("not-a-scorer"), &models(), ""));
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("validation failed") && text(&out).contains("missing exports"),
        "{}",
        text(&out)
    );
    // A module whose model is missing.
    let empty = fx.dir.join("empty-models");
    std::fs::create_dir_all(&empty).unwrap();
    let file = fx.file(&toml("no-model", &guest("onnx_mlp"), &empty, ""));
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no model named 'mlp'"),
        "{}",
        text(&out)
    );
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let file = fx.file(&toml(
        "taken",
        &guest("echo"),
        &models(),
        &format!("port = {port}"),
    ));
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("port {port} is taken")),
        "{}",
        text(&out)
    );
    // Nothing was recorded, so nothing can be running, and `endpoints`
    // says so.
    let list = fx.run(&["endpoints"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "");
    assert!(
        text(&list).contains("no endpoints deployed"),
        "{}",
        text(&list)
    );
}

#[test]
fn deploy_takes_allow_root_as_the_runtime_does() {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0;
    if !root {
        eprintln!("not root: the refusal this test checks cannot happen here");
        return;
    }
    let fx = Fixture::new("deploy-root");
    let file = fx.file(&toml("rooted", &guest("onnx_mlp"), &models(), ""));
    let deploy = |extra: &[&str]| {
        common::binary()
            .args(["deploy", "-f", file.to_str().unwrap()])
            .args(extra)
            .env_remove("SANDSCORE_ALLOW_ROOT")
            .env("SANDSCORE_STATE_DIR", &fx.state)
            .output()
            .expect("run deploy")
    };
    let refused = deploy(&[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("--allow-root"),
        "{}",
        text(&refused)
    );
    let out = deploy(&["--allow-root"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = fx.run(&["delete", "rooted"]);
    assert!(out.status.success(), "{}", text(&out));
}
