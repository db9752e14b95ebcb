//! Python scoring scripts on the command line: `sandscore build score.py`
//! makes the module and its `.cwasm` ahead of time; a `score.py` given
//! where a module goes (`--module`, `AZUREML_ENTRY_SCRIPT`) is built on
//! start and cached, so the images take a script as they take a module.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::args::RuntimeArgs;
use anyhow::Context;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The script: Azure ML's init() and run(raw_data), models through
    /// `import sandscore`.
    pub script: PathBuf,
    /// The module to write [default: the script's path with .wasm]; its
    /// precompiled .cwasm goes beside it. Implies --component.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Make a componentize-py component (standard library only) even where
    /// the Python runtime is installed.
    #[arg(long)]
    pub component: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Where componentize-py and built scripts are kept: the compiled-code
/// cache, or a folder under the temporary directory with `--no-cache`.
fn cache(runtime: &RuntimeArgs) -> PathBuf {
    runtime
        .cache()
        .unwrap_or_else(|| std::env::temp_dir().join("sandscore-cache"))
}

fn say(line: &str) {
    eprintln!("sandscore: {line}");
}

/// `sandscore build`: the component, then its `.cwasm` for this build's
/// engine settings.
pub fn build(mut args: BuildArgs) -> anyhow::Result<()> {
    if !args.component
        && args.output.is_none()
        && let Some(python) = args.runtime.python()
    {
        return prepare(&mut args.runtime, &python, &args.script);
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.script.with_extension("wasm"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let started = Instant::now();
    sandscore_sdk::python::build(&args.script, &out, &cache(&args.runtime), &mut say)?;
    let built = started.elapsed();
    let cwasm = out.with_extension("cwasm");
    say(&format!("precompiling {} (~5 s)", out.display()));
    super::precompile(&args.runtime, &out, &cwasm)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() >> 20).unwrap_or(0);
    say(&format!(
        "built in {:.1} s, precompiled in {:.1} s",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    ));
    println!("{} ({} MiB)", out.display(), size(&out));
    println!("{} ({} MiB)", cwasm.display(), size(&cwasm));
    Ok(())
}

/// `sandscore build` for the Python runtime, which runs the script as it
/// is: its packages resolved and the interpreter compiled, so a server (or
/// a container given both) starts without either.
fn prepare(
    runtime: &mut RuntimeArgs,
    python: &sandscore_runtime::reactor::PythonRuntime,
    script: &Path,
) -> anyhow::Result<()> {
    if !script.is_file() {
        anyhow::bail!("cannot read the scoring script {}", script.display());
    }
    packages(runtime, python, script)?;
    let config = runtime.sandbox();
    if !sandscore_runtime::reactor::precompiled_fits(python, &config) {
        say("compiling the Python runtime (once per machine and version; a minute or two)");
        sandscore_runtime::reactor::precompile(python, &config, &python.code())
            .context("cannot precompile the Python runtime (is its folder writable?)")?;
    }
    println!("script    {}", script.display());
    println!("runtime   {}", python.code().display());
    for dir in &runtime.extra_packages {
        println!("packages  {}", dir.display());
    }
    say(&format!(
        "ready: `sandscore check --module {} --model-dir DIR` imports it and runs init(); `sandscore build --component` makes a componentize-py component instead",
        script.display()
    ));
    Ok(())
}

/// Replaces a `.py` module with its built component (from the cache when
/// the script has not changed since), unless the Python runtime is there
/// to run the script itself.
pub fn resolve(runtime: &mut RuntimeArgs) -> anyhow::Result<()> {
    pickles(runtime)?;
    let Some(script) = runtime
        .module
        .clone()
        .filter(|m| sandscore_sdk::python::is_script(m))
    else {
        return Ok(());
    };
    // The Python runtime runs the script as it is; componentize-py, with
    // no numpy or pandas, is the fallback where it is not installed.
    if let Some(python) = runtime.python() {
        return packages(runtime, &python, &script);
    }
    say(
        "no Python runtime with the scientific stack here (make wasi-python, --python-runtime): the script becomes a componentize-py component, with the standard library only",
    );
    let started = Instant::now();
    let mut built = false;
    let wasm = sandscore_sdk::python::cached(&script, &cache(runtime), &mut |line: &str| {
        built = true;
        say(line);
    })
    .with_context(|| format!("cannot build {}", script.display()))?;
    if built {
        say(&format!(
            "{} built in {:.1} s; `sandscore build` ahead of time starts faster",
            script.display(),
            started.elapsed().as_secs_f64()
        ));
    }
    runtime.module = Some(wasm);
    Ok(())
}

/// The packages folders a script gets beyond `--python-packages`: its
/// `requirements.txt` resolved (cached by content), then each `PYTHONPATH`
/// folder the sandbox may be granted (one it may not is skipped, saying
/// why).
fn packages(
    runtime: &mut RuntimeArgs,
    python: &sandscore_runtime::reactor::PythonRuntime,
    script: &Path,
) -> anyhow::Result<()> {
    let folder = script
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Some(dir) = requirements(python, script, &cache(runtime))? {
        runtime.extra_packages.push(dir);
    }
    let own = std::fs::canonicalize(folder).ok();
    let path = std::env::var_os("PYTHONPATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).filter(|d| !d.as_os_str().is_empty()) {
        let real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if own.as_ref() == Some(&real) || !real.is_dir() {
            continue;
        }
        let granted = sandscore_runtime::reactor::check_grant(&real, "a PYTHONPATH folder")
            .and_then(|()| sandscore_runtime::reactor::check_packages(&real));
        match granted {
            Ok(()) => runtime.extra_packages.push(real),
            Err(e) => say(&format!(
                "PYTHONPATH: {} is not given to the script: {e}",
                dir.display()
            )),
        }
    }
    Ok(())
}

/// The packages folder of `script`'s `requirements.txt` (resolved into
/// `cache`, or found resolved), when it has one that needs installing.
fn requirements(
    python: &sandscore_runtime::reactor::PythonRuntime,
    script: &Path,
    cache: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let file = script.with_file_name("requirements.txt");
    if !file.is_file() {
        return Ok(None);
    }
    let manifest = python.manifest();
    if manifest.is_empty() {
        say(&format!(
            "{} has no MANIFEST, so requirements.txt cannot be checked against what it bundles: run `make wasi-python` again",
            python.dir.display()
        ));
    }
    let bundle = sandscore_sdk::requirements::Bundle::parse(&manifest);
    Ok(sandscore_sdk::requirements::resolve(
        &file,
        &bundle,
        &python.packages,
        cache,
        &mut say,
    )?)
}

/// The built-in script that serves scikit-learn pickles.
const PICKLES: &str = include_str!("../../guest/python-reactor/sandscore_pickles.py");

/// Extensions of scikit-learn pickles.
const PICKLE_EXTENSIONS: [&str; 3] = ["pkl", "joblib", "pickle"];

/// With no module and `--serve-pickles`, the model directory's pickles are
/// served by the built-in script (written to the cache, whose folder is
/// all the script is granted); a pickle nothing will read is a warning
/// that names what would.
fn pickles(runtime: &mut RuntimeArgs) -> anyhow::Result<()> {
    let Some(dir) = runtime.model_dir.clone() else {
        return Ok(());
    };
    if runtime
        .module
        .as_deref()
        .is_some_and(sandscore_sdk::python::is_script)
    {
        return Ok(());
    }
    let found: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .take(10_000)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    let has_python = runtime.python().is_some();
    if runtime.module.is_none() && runtime.serve_pickles && has_python {
        let folder = cache(runtime).join("python-builtin").join("pickles");
        let file = folder.join("score.py");
        if std::fs::read_to_string(&file).ok().as_deref() != Some(PICKLES) {
            // Through a temporary file: a server starting beside this one
            // never reads half of it.
            let tmp = folder.join(format!("score.py.{}", std::process::id()));
            std::fs::create_dir_all(&folder)
                .and_then(|()| std::fs::write(&tmp, PICKLES))
                .and_then(|()| std::fs::rename(&tmp, &file))
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        say(&format!(
            "serving the scikit-learn pickles {} at /score",
            found.join(", ")
        ));
        runtime.module = Some(file);
        return Ok(());
    }
    let how = if has_python {
        "pass --serve-pickles (SANDSCORE_SERVE_PICKLES=1) to serve them"
    } else {
        "the Python runtime (make wasi-python) with --serve-pickles serves them"
    };
    say(&format!(
        "{} in {}: scikit-learn pickles, which no model backend reads; the sandscore/sklearn-cpu image serves them without a script, a score.py reads them with joblib.load, or here {how}",
        found.join(", "),
        dir.display()
    ));
    Ok(())
}

/// For a deployment of a `score.py` with a `requirements.txt` and no
/// `python_packages`: the packages resolved here, on the host (cached), so
/// a container or pod gets the folder and never resolves again. Without a
/// Python runtime here, the image resolves what it bundles itself.
pub fn deployment_packages(d: &mut sandscore_sdk::Deployment) -> anyhow::Result<()> {
    let Some(script) = d
        .module
        .clone()
        .filter(|m| sandscore_sdk::python::is_script(m))
    else {
        return Ok(());
    };
    if d.python_packages.is_some() {
        return Ok(());
    }
    // The runtime settings the environment gives (cache, Python runtime).
    let runtime =
        RuntimeArgs::from_env().context("cannot read the runtime settings from the environment")?;
    let Some(python) = runtime.python() else {
        return Ok(());
    };
    d.python_packages = requirements(&python, &script, &cache(&runtime))?;
    Ok(())
}
