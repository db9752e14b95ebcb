//! From `sandscore init` to a scored request, as a new user goes: scaffold a
//! project around the mlp model, build it for wasm32-wasip2 with cargo,
//! deploy it locally (its sample request must score), invoke it, read its
//! logs, delete it. The answer must equal ONNX Runtime's own.

mod common;

use common::fixture::{Fixture, scaffold, text};
use common::{assert_close, expected, models};
use serde_json::{Value, json};

#[test]
fn init_build_deploy_invoke_logs_delete() {
    let fx = Fixture::new("init");
    let project = scaffold(&fx);
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "request.json",
        "sandscore.toml",
        "models/mlp.onnx",
    ] {
        assert!(project.join(f).is_file(), "{f} was not written");
    }
    // A second init into the same folder refuses and changes nothing.
    let again = fx.run(&["init", project.to_str().unwrap()]);
    assert!(
        !again.status.success() && text(&again).contains("not empty"),
        "{}",
        text(&again)
    );

    let file = project.join("sandscore.toml");
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("hello-model http://127.0.0.1:"),
        "{}",
        text(&out)
    );

    let exp = expected();
    let request = fx.dir.join("request.json");
    std::fs::write(&request, json!({ "data": exp["mlp"]["input"] }).to_string()).unwrap();
    let out = fx.run(&["invoke", "hello-model", "--data", request.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    let rows = exp["mlp"]["input"].as_array().unwrap().len();
    assert_eq!(answer["probabilities"]["shape"], json!([rows, 10]));
    assert_close(
        &answer["probabilities"]["values"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    // V2 straight to the model through the CLI.
    let v2 = fx.dir.join("v2.json");
    let flat: Vec<f64> = exp["mlp"]["input"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    std::fs::write(
        &v2,
        json!({ "inputs": [{ "name": "input", "shape": [rows, 64], "datatype": "FP32", "data": flat }] })
            .to_string(),
    )
    .unwrap();
    let out = fx.run(&[
        "invoke",
        "hello-model",
        "--model",
        "mlp",
        "--data",
        v2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    let probs = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "probabilities"))
        .expect("probabilities output");
    assert_close(&probs["data"], &exp["mlp"]["ort"]["probabilities"], 1e-5);
    // Every digit as the server wrote it: the same request sent directly
    // answers the same bytes.
    let url = String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout)
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the endpoint's URL")
        .to_string();
    let mut direct = common::agent()
        .post(format!("{url}/v2/models/mlp/infer"))
        .header("content-type", "application/json")
        .send(std::fs::read(&v2).unwrap())
        .expect("direct infer");
    let direct = direct.body_mut().read_to_string().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        direct.trim_end()
    );

    let logs = fx.run(&["logs", "hello-model"]);
    let log = String::from_utf8_lossy(&logs.stdout).to_string();
    assert!(
        log.contains("listening on") && !log.contains('\u{1b}'),
        "{log}"
    );
    let out = fx.run(&["delete", "hello-model"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
}

#[test]
fn a_sample_request_that_does_not_score_fails_validation() {
    let fx = Fixture::new("sample");
    let sample = fx.dir.join("bad-request.json");
    std::fs::write(&sample, r#"{"data": [[1, 2, 3]]}"#).unwrap();
    let file = fx.file(&common::fixture::toml(
        "bad-sample",
        &common::guest("onnx_mlp"),
        &models(),
        &format!("sample = \"{}\"", sample.display()),
    ));
    let out = fx.run(&["deploy", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("did not score") && text(&out).contains("row 0 has 3 values"),
        "{}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
}

#[test]
fn init_takes_only_plain_names_and_picks_the_image_by_model() {
    let fx = Fixture::new("init-names");
    let out = fx.run(&[
        "init",
        fx.dir.join("quoted").to_str().unwrap(),
        "--input",
        "x\"; panic!(\"",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("input name"),
        "{}",
        text(&out)
    );
    let booster = common::xgb_models().join("iris_xgb.json");
    let project = fx.dir.join("boosted");
    let out = fx.run(&[
        "init",
        project.to_str().unwrap(),
        "--model",
        booster.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let toml = std::fs::read_to_string(project.join("sandscore.toml")).unwrap();
    assert!(toml.contains("image = \"xgboost-cpu\""), "{toml}");
    // The booster's four features, read from the model.
    assert!(text(&out).contains("4 numbers per row"), "{}", text(&out));
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    assert!(lib.contains("const FEATURES: usize = 4;"), "{lib}");
    // Without a model, the first step puts one where src/lib.rs looks.
    let bare = fx.dir.join("bare");
    let out = fx.run(&["init", bare.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}/models/model.onnx", bare.display())),
        "{}",
        text(&out)
    );
}
