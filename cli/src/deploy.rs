//! The deployment commands (`init`, `deploy`, `endpoints`, `invoke`,
//! `logs`, `delete`): thin wrappers over `sandscore-sdk` that add progress
//! lines and context for a person at a terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::ValueEnum;
use sandscore_sdk::store::Placement;
use sandscore_sdk::{Deployment, Endpoint, kubernetes, scaffold, store, target};

/// Where `deploy` puts a deployment.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Target {
    /// A background process on this machine.
    Local,
    /// The prebuilt image under Docker or Podman.
    Container,
    /// Kubernetes manifests: Deployment, Service, ConfigMaps.
    Kubernetes,
    /// KServe manifests: ServingRuntime and InferenceService (V2).
    Kserve,
}

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The deployment file.
    #[arg(short, long, default_value = "sandscore.toml")]
    file: PathBuf,
    /// Where to deploy.
    #[arg(long, value_enum, default_value = "local")]
    target: Target,
    /// Folder for the manifests (kubernetes, kserve) [default: k8s/NAME
    /// beside the deployment file].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the manifests without `kubectl apply`.
    #[arg(long)]
    no_apply: bool,
    /// Registry the cluster pulls the image from (`registry.example.com/team`),
    /// overriding `[kubernetes] registry`; `sandscore images push` puts
    /// the images there.
    #[arg(long)]
    registry: Option<String>,
    /// Run the runtime as root anyway (validation and the local target).
    #[arg(long, env = "SANDSCORE_ALLOW_ROOT", value_parser = clap::builder::BoolishValueParser::new())]
    allow_root: bool,
}

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The endpoint's name.
    name: String,
    /// JSON request body file.
    #[arg(long)]
    data: PathBuf,
    /// Send the body to this model's V2 `infer` instead of `/score`.
    #[arg(long)]
    model: Option<String>,
    /// Send it over gRPC (ModelInfer) to the endpoint's gRPC port instead
    /// of HTTP (needs --model; the container target publishes one).
    #[arg(long, requires = "model")]
    grpc: bool,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// The endpoint's name.
    name: String,
    /// Keep printing as the log grows (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
}

#[derive(clap::Args)]
pub struct NameArg {
    /// The endpoint's name.
    pub name: String,
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Folder of the new project (its name names the crate and endpoint).
    dir: PathBuf,
    /// A model file to copy into the project's models/ (its stem is the
    /// model's name); its first input names the tensor and the features
    /// per row.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model's input tensor name [default: the model's first input,
    /// else `input`].
    #[arg(long)]
    input: Option<String>,
    /// Numbers per input row [default: the model's first input's last
    /// dimension, else 4].
    #[arg(long)]
    features: Option<usize>,
}

/// The inputs of `model` (a file, or a SavedModel folder) as the runtime
/// reads them, printed; the first one's name and numbers per row when it is
/// an FP32 `[rows, N]` tensor, else `None` (with a warning).
fn model_input(model: &std::path::Path) -> Option<(String, usize)> {
    let dir = std::env::temp_dir().join(format!("sandscore-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let name = model.file_name()?;
    let read = (|| -> anyhow::Result<(String, Vec<sandscore_runtime::service::TensorSpec>)> {
        // A link, not a copy: a model (or SavedModel folder) may be large.
        std::os::unix::fs::symlink(std::path::absolute(model)?, dir.join(name))?;
        let mut config = crate::args::RuntimeArgs::from_env()?.service_config();
        config.module = None;
        config.model_dir = Some(dir.clone());
        config.sandbox.workers = 1;
        let service = sandscore_runtime::service::Service::start(&config)?;
        let names = service.model_names();
        let first = names.first().context("no model in the file")?;
        let info = service.model(first, None)?;
        Ok((first.clone(), info.inputs))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    match read {
        Ok((name, inputs)) => {
            let all: Vec<String> = inputs
                .iter()
                .map(|i| format!("{} {} {:?}", i.name, i.datatype, i.shape))
                .collect();
            println!("model '{name}': inputs {}", all.join(", "));
            pick(&inputs)
        }
        Err(e) => {
            eprintln!(
                "warning: cannot read the model's inputs ({e:#}); pass --input and --features"
            );
            None
        }
    }
}

/// The first input's name and row width, when it is rows of FP32 numbers
/// (what src/lib.rs sends).
fn pick(inputs: &[sandscore_runtime::service::TensorSpec]) -> Option<(String, usize)> {
    match inputs.first() {
        Some(i) if i.datatype == "FP32" && i.shape.len() == 2 && i.shape[1] > 0 => {
            Some((i.name.clone(), i.shape[1] as usize))
        }
        Some(i) => {
            eprintln!(
                "warning: the model's first input '{}' is {} {:?}, not rows of FP32 numbers; src/lib.rs sends rows of FP32 (--input, --features) and needs adapting",
                i.name, i.datatype, i.shape
            );
            None
        }
        None => None,
    }
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let read = match (&args.model, &args.input, args.features) {
        (Some(m), None, _) | (Some(m), _, None) => model_input(m),
        _ => None,
    };
    let input = args
        .input
        .or_else(|| read.as_ref().map(|(n, _)| n.clone()))
        .unwrap_or_else(|| "input".into());
    let features = args
        .features
        .or(read.as_ref().map(|(_, f)| *f))
        .unwrap_or(4);
    let written = scaffold::init(&scaffold::Options {
        dir: args.dir.clone(),
        model_file: args.model.clone(),
        input: input.clone(),
        features,
    })?;
    for f in &written {
        println!("  {}", args.dir.join(f).display());
    }
    println!("model input: '{input}', {features} numbers per row");
    let first = if args.model.is_none() {
        format!(
            "  cp YOUR_MODEL.onnx {}/models/model.onnx    # then set INPUT and FEATURES in src/lib.rs to its input (or rerun init with --model)\n",
            args.dir.display()
        )
    } else {
        String::new()
    };
    println!(
        "next:\n{first}  cd {}\n  cargo build --target wasm32-wasip2 --release\n  sandscore deploy            # or --target container",
        args.dir.display()
    );
    Ok(())
}

pub fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    if args.allow_root {
        // SAFETY: set before any thread starts; the runtime processes this
        // deployment starts read it as their own `--allow-root`.
        unsafe { std::env::set_var("SANDSCORE_ALLOW_ROOT", "1") };
    }
    let mut d = Deployment::from_file(&args.file)?;
    if let Some(r) = &args.registry {
        d.kubernetes.registry = Some(r.clone());
    }
    crate::python::deployment_packages(&mut d)?;
    let started = Instant::now();
    let mut progress =
        |step: &str| eprintln!("[{:>5.1}s] {step}…", started.elapsed().as_secs_f64());
    let runtime = std::env::current_exe().context("cannot find the sandscore binary")?;
    let cluster = |flavour: &'static str| {
        let dir = args.out.clone().unwrap_or_else(|| {
            args.file
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("k8s")
                .join(&d.name)
        });
        target::Cluster {
            runtime: runtime.clone(),
            flavour,
            dir,
            apply: !args.no_apply,
        }
    };
    let place: Box<dyn target::Target> = match args.target {
        Target::Local => Box::new(target::Local {
            runtime: runtime.clone(),
        }),
        Target::Container => Box::new(target::Container),
        Target::Kubernetes => Box::new(cluster("kubernetes")),
        Target::Kserve => Box::new(cluster("kserve")),
    };
    let deployed = place.deploy(&d, &mut progress)?;
    let record = &deployed.record;
    match &record.placement {
        Placement::Kubernetes { manifests, applied } | Placement::Kserve { manifests, applied } => {
            let flavour = record.placement.target();
            for f in kubernetes::applied_files(manifests, flavour) {
                println!("  {}", f.display());
            }
            for step in kubernetes::next_steps(&d, flavour)? {
                eprintln!("warning: {step}");
            }
            if *applied {
                eprintln!("applied; in the cluster: {}", record.url);
            } else {
                let files: Vec<String> =
                    kubernetes::applied_files(manifests, record.placement.target())
                        .iter()
                        .map(|f| format!("-f {}", f.display()))
                        .collect();
                eprintln!(
                    "written, not applied ({}); apply with: kubectl apply {}",
                    deployed.note.clone().unwrap_or_default(),
                    files.join(" ")
                );
            }
        }
        _ => {
            eprintln!("[{:>5.1}s] ready", started.elapsed().as_secs_f64());
            println!("{} {}", record.name, record.url);
            if let Some(grpc) = &record.grpc {
                eprintln!("gRPC: {grpc}");
            }
        }
    }
    Ok(())
}

pub fn endpoints() -> anyhow::Result<()> {
    let records = store::list();
    if records.is_empty() {
        eprintln!("no endpoints deployed (`sandscore deploy` makes one)");
    }
    for record in records {
        let e = Endpoint { record };
        let r = &e.record;
        println!(
            "{:<24} {:<10} {:<8} {}",
            r.name,
            r.placement.target(),
            e.state(),
            r.url
        );
    }
    Ok(())
}

pub fn invoke(args: InvokeArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    // Checked here, sent as it is: the answer is printed as the server
    // wrote it, every digit its own.
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
        .with_context(|| format!("{} is not JSON", args.data.display()))?;
    let endpoint = Endpoint::get(&args.name)?;
    if endpoint.record.placement.in_cluster() {
        bail!(
            "{} runs in a cluster ({}); send requests from inside it or through a port-forward",
            args.name,
            endpoint.record.url
        );
    }
    if let (true, Some(model)) = (args.grpc, &args.model) {
        let Some(addr) = &endpoint.record.grpc else {
            bail!(
                "{} has no gRPC address: the {} target serves HTTP only (the container target publishes gRPC)",
                args.name,
                endpoint.record.placement.target()
            );
        };
        println!("{}", crate::grpc_invoke::infer(addr, model, &bytes)?);
        return Ok(());
    }
    let answer = endpoint.send(args.model.as_deref(), &bytes)?;
    println!("{}", answer.trim_end());
    Ok(())
}

pub fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::get(&args.name)?;
    let mut shown = 0;
    loop {
        let text = endpoint.logs()?;
        // A container's log is stdout then stderr, so it does not only grow
        // at the end: print it whole again when what was shown changed.
        match text.get(shown..) {
            Some(new) if text.len() >= shown => print!("{new}"),
            _ => print!("{text}"),
        }
        shown = text.len();
        if !args.follow {
            return Ok(());
        }
        std::io::stdout().flush()?;
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

pub fn delete(args: NameArg) -> anyhow::Result<()> {
    Endpoint::get(&args.name)?.delete()?;
    eprintln!("deleted {}", args.name);
    Ok(())
}
