//! A deployment sandbox for tests: a temporary folder, its own state
//! directory, and the CLI run against both; whatever a failed assertion
//! left deployed is deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Fixture {
    pub dir: PathBuf,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("sandscore-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Fixture {
            state: dir.join("state"),
            dir,
        }
    }

    pub fn file(&self, body: &str) -> PathBuf {
        let f = self.dir.join("sandscore.toml");
        std::fs::write(&f, body).expect("write sandscore.toml");
        f
    }

    pub fn run(&self, args: &[&str]) -> Output {
        super::binary()
            .args(args)
            .env("SANDSCORE_STATE_DIR", &self.state)
            .output()
            .expect("run sandscore")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Stop anything a failed assertion left running.
        for entry in std::fs::read_dir(&self.state)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(name) = entry
                .path()
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|_| entry.path().extension().is_some_and(|e| e == "json"))
            {
                let _ = self.run(&["delete", name]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn toml(name: &str, module: &Path, models: &Path, extra: &str) -> String {
    format!(
        "api_version = \"sandscore/v1\"\nname = \"{name}\"\nmodule = \"{}\"\nmodel_dir = \"{}\"\n{extra}\n[limits]\nworkers = 2\n",
        module.display(),
        models.display()
    )
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sandscore init hello-model` around the generated mlp model (64
/// features), built: the project folder.
pub fn scaffold(fx: &Fixture) -> PathBuf {
    let project = fx.dir.join("hello-model");
    let mlp = super::models().join("mlp.onnx");
    let out = fx.run(&[
        "init",
        project.to_str().unwrap(),
        "--model",
        mlp.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The input's name and width come from the model itself.
    assert!(
        text(&out).contains("model input: 'input', 64 numbers per row"),
        "{}",
        text(&out)
    );
    build(&project);
    project
}

/// Builds the scaffolded project; the build directory is kept beside the
/// workspace's so a rerun does not compile wit-bindgen again.
fn build(project: &Path) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("scaffold");
    // The workspace's lock pins the same crate versions the guests use.
    std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock")).expect("copy lock");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo build:\n{}", text(&out));
    let wasm = target.join("wasm32-wasip2/release/hello_model.wasm");
    // Where the scaffold's sandscore.toml expects it after a plain build.
    let at = project.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&at).expect("mkdir");
    std::fs::copy(&wasm, at.join("hello_model.wasm")).expect("copy module");
    at.join("hello_model.wasm")
}

/// The objects of a manifest file (YAML documents).
pub fn objects(path: &Path) -> Vec<serde_json::Value> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(path).expect("manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("YAML"))
        .collect()
}

/// The first object of `kind`.
pub fn find<'a>(objects: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objects:?}"))
}
