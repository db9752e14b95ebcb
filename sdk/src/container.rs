//! The container target: a prebuilt image run by Docker or Podman, with the
//! module and models mounted read-only and the images' hardening flags, so
//! nothing is built at deployment.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::check::CheckReport;
use crate::http::ready;
use crate::images::{self, Image};
use crate::store::{self, Placement, Record};
use crate::{Deployment, SdkError};

/// Where the images expect the module and the models.
const MODULE_PATH: &str = "/app/score.wasm";
/// Where a Python script's folder is mounted.
const SCRIPT_DIR: &str = "/app/src";
/// Where a script's packages folder is mounted.
const PACKAGES_DIR: &str = "/app/packages";
const MODEL_PATH: &str = "/models";

/// The engines tried, in order; `SANDSCORE_ENGINE` picks one.
const ENGINES: [&str; 2] = ["docker", "podman"];

/// The container engine that answers: `$SANDSCORE_ENGINE`, else the first
/// of docker and podman whose `info` succeeds.
pub fn engine() -> Result<String, SdkError> {
    let wanted = std::env::var("SANDSCORE_ENGINE").ok();
    let candidates: Vec<&str> = match &wanted {
        Some(e) => vec![e.as_str()],
        None => ENGINES.to_vec(),
    };
    for e in &candidates {
        let answers = Command::new(e)
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if answers {
            return Ok(e.to_string());
        }
    }
    Err(SdkError::Engine(format!(
        "no container engine answers (tried {}): start the Docker daemon or install Podman, or deploy with --target local",
        candidates.join(", ")
    )))
}

/// Runs `engine ARGS`, naming the step when it fails.
pub(crate) fn run(engine: &str, args: &[String], step: &str) -> Result<Output, SdkError> {
    Command::new(engine)
        .args(args)
        .output()
        .map_err(|e| SdkError::Engine(format!("{step}: cannot run {engine}: {e}")))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .trim()
    .to_string()
}

/// The image, checked to be present in the engine's store.
fn present_image(engine: &str, d: &Deployment) -> Result<Image, SdkError> {
    let image = images::for_deployment(d)?;
    let out = run(
        engine,
        &["image".into(), "inspect".into(), image.reference()],
        "image check",
    )?;
    if !out.status.success() {
        return Err(SdkError::ImageMissing {
            image: image.reference(),
            engine: engine.into(),
        });
    }
    Ok(image)
}

/// The hardening flags and mounts shared by validation and serving:
/// read-only root, no capabilities, no privilege gain, module and models
/// read-only, resource limits, and the GPUs the deployment asks for
/// (Docker's `--gpus`; Podman's CDI devices).
fn container_args(d: &Deployment, engine: &str) -> Result<Vec<String>, SdkError> {
    let mut a: Vec<String> = [
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "512",
    ]
    .map(String::from)
    .to_vec();
    let cpus = crate::quantity::parse(&d.resources.cpu);
    let memory = crate::quantity::parse(&d.resources.memory);
    if let (Some(cpus), Some(memory)) = (cpus, memory) {
        a.extend(["--cpus".into(), format!("{cpus}")]);
        a.extend(["--memory".into(), format!("{}b", memory as u64)]);
    }
    a.extend(gpu_args(d.gpus(), engine));
    let mount = |host: &std::path::Path, inside: &str| -> Result<String, SdkError> {
        let host = host
            .canonicalize()
            .map_err(|e| SdkError::Invalid(format!("{}: {e}", host.display())))?;
        Ok(format!("{}:{inside}:ro", host.display()))
    };
    match &d.module {
        // A script: its folder (what it imports), run by the image's Python
        // runtime (or built on start where an image has componentize-py).
        Some(m) if crate::python::is_script(m) => {
            let dir = m.parent().unwrap_or(std::path::Path::new("."));
            a.extend(["-v".into(), mount(dir, SCRIPT_DIR)?]);
            let name = m.file_name().unwrap_or_default().to_string_lossy();
            a.extend([
                "-e".into(),
                format!("AZUREML_ENTRY_SCRIPT={SCRIPT_DIR}/{name}"),
            ]);
        }
        Some(m) => {
            a.extend(["-v".into(), mount(m, MODULE_PATH)?]);
            let cwasm = m.with_extension("cwasm");
            if cwasm.is_file() {
                a.extend(["-v".into(), mount(&cwasm, "/app/score.cwasm")?]);
            }
        }
        None => a.extend(["-e".into(), "AZUREML_ENTRY_SCRIPT=".into()]),
    }
    if let Some(p) = &d.python_packages {
        a.extend(["-v".into(), mount(p, PACKAGES_DIR)?]);
        a.extend([
            "-e".into(),
            format!("AZUREML_EXTRA_PYTHON_LIB_PATH={PACKAGES_DIR}"),
        ]);
    }
    match &d.model_dir {
        Some(m) => a.extend(["-v".into(), mount(m, MODEL_PATH)?]),
        None => a.extend(["-e".into(), "AZUREML_MODEL_DIR=".into()]),
    }
    Ok(a)
}

/// The flags that hand `gpus` NVIDIA GPUs to a container (none for 0).
fn gpu_args(gpus: u32, engine: &str) -> Vec<String> {
    if gpus == 0 {
        Vec::new()
    } else if engine.ends_with("podman") {
        (0..gpus)
            .flat_map(|i| ["--device".into(), format!("nvidia.com/gpu={i}")])
            .collect()
    } else {
        vec!["--gpus".into(), gpus.to_string()]
    }
}

/// Runs `sandscore check` (and the sample request, if any) inside the image,
/// without network: what the image's backends load is what counts.
pub fn validate(d: &Deployment, engine: &str) -> Result<CheckReport, SdkError> {
    d.check_fields().map_err(SdkError::Invalid)?;
    let image = present_image(engine, d)?;
    let mut args: Vec<String> = ["run", "--rm", "--network", "none"]
        .map(String::from)
        .to_vec();
    args.extend(container_args(d, engine)?);
    args.push(image.reference());
    let mut check = args.clone();
    check.extend(["check", "--format", "json"].map(String::from));
    check.extend(d.limit_args());
    let out = run(engine, &check, "validation")?;
    if !out.status.success() {
        return Err(SdkError::Invalid(text(&out)));
    }
    let report = CheckReport::parse(&out.stdout).map_err(SdkError::Engine)?;
    if let Some(sample) = &d.sample {
        let input = std::fs::File::open(sample)
            .map_err(|e| SdkError::Invalid(format!("sample {}: {e}", sample.display())))?;
        args.insert(1, "-i".into());
        args.push("score".into());
        args.extend(d.limit_args());
        let out = Command::new(engine)
            .args(&args)
            .stdin(input)
            .output()
            .map_err(|e| SdkError::Engine(format!("sample request: {e}")))?;
        crate::local::sample_result(sample, &out)?;
    }
    Ok(report)
}

/// The container's name for a deployment.
pub fn container_name(d: &Deployment) -> String {
    format!("sandscore-{}", d.name)
}

/// Validates in the image, starts the container, waits until it is ready
/// and records it. On any failure the container is removed.
pub fn deploy(d: &Deployment, progress: &mut dyn FnMut(&str)) -> Result<Record, SdkError> {
    if store::load(&d.name).is_ok() {
        return Err(SdkError::Exists(d.name.clone()));
    }
    progress("finding a container engine");
    let engine = engine()?;
    progress(&format!("checking the image ({engine})"));
    let image = present_image(&engine, d)?;
    progress("validating module and models inside the image");
    validate(d, &engine)?;
    let port = d.port.unwrap_or(0);
    if port != 0 && TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(SdkError::PortTaken(port));
    }
    let publish = if port == 0 {
        "127.0.0.1::5001".to_string()
    } else {
        format!("127.0.0.1:{port}:5001")
    };
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        container_name(d),
        "--label".into(),
        format!("io.sandscore.deployment={}", d.name),
        // A crashed or rebooted host brings the endpoint back.
        "--restart".into(),
        "unless-stopped".into(),
        "-p".into(),
        publish,
        // gRPC on a free host port, recorded with the endpoint.
        "-p".into(),
        "127.0.0.1::8001".into(),
    ];
    args.extend(container_args(d, &engine)?);
    args.push(image.reference());
    args.push("serve".into());
    args.extend(d.limit_args());
    progress(&format!("starting {}", image.reference()));
    let out = run(&engine, &args, "container start")?;
    if !out.status.success() {
        let why = text(&out);
        if why.contains("port is already allocated") || why.contains("address already in use") {
            return Err(SdkError::PortTaken(port));
        }
        return Err(SdkError::Engine(format!("container start: {why}")));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // From here on, any failure removes the container it started.
    let started = finish(d, &engine, &id, progress);
    if started.is_err() {
        let _ = remove(&engine, &id);
    }
    started
}

/// Waits for the started container `id` to be ready and records it.
fn finish(
    d: &Deployment,
    engine: &str,
    id: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Record, SdkError> {
    let engine = engine.to_string();
    let id = id.to_string();
    let placement = Placement::Container {
        engine: engine.clone(),
        container: id.clone(),
    };
    let mut record = Record::new(d, placement, String::new());
    let fail = |_: &Record, why: &str| {
        let logs = logs(&engine, &id).unwrap_or_default();
        let lines: Vec<&str> = logs.lines().collect();
        SdkError::NotReady(format!(
            "{why}; the container said:\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        ))
    };
    let published = |port: &str| -> Result<Option<String>, SdkError> {
        let ported = run(
            &engine,
            &["port".into(), id.clone(), port.into()],
            "port lookup",
        )?;
        Ok(String::from_utf8_lossy(&ported.stdout)
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .map(str::to_string))
    };
    let Some(host_port) = published("5001/tcp")? else {
        return Err(fail(&record, "the engine published no port"));
    };
    record.url = format!("http://127.0.0.1:{host_port}");
    record.grpc = published("8001/tcp")?.map(|p| format!("127.0.0.1:{p}"));
    progress("waiting for readiness");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(&record.url) {
        if !running(&engine, &id) {
            return Err(fail(&record, "the container exited"));
        }
        if Instant::now() > deadline {
            return Err(fail(&record, "it was not ready within 120 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    store::save(&record)?;
    Ok(record)
}

/// Whether the container is running.
pub fn running(engine: &str, id: &str) -> bool {
    run(
        engine,
        &[
            "inspect".into(),
            "-f".into(),
            "{{.State.Running}}".into(),
            id.into(),
        ],
        "inspect",
    )
    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
}

/// The container's output so far.
pub fn logs(engine: &str, id: &str) -> Result<String, SdkError> {
    let out = run(engine, &["logs".into(), id.into()], "logs")?;
    if !out.status.success() {
        return Err(SdkError::Engine(format!("logs: {}", text(&out))));
    }
    Ok(text(&out) + "\n")
}

/// Stops the container (SIGTERM, 35 s to drain) and removes it with its
/// `/tmp` volume.
pub fn remove(engine: &str, id: &str) -> Result<(), SdkError> {
    let _ = run(
        engine,
        &["stop".into(), "-t".into(), "35".into(), id.into()],
        "stop",
    )?;
    let out = run(
        engine,
        &["rm".into(), "-f".into(), "-v".into(), id.into()],
        "remove",
    )?;
    if !out.status.success() && !text(&out).contains("No such container") {
        return Err(SdkError::Engine(format!("remove {id}: {}", text(&out))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gpu_args;

    #[test]
    fn gpus_reach_docker_and_podman_in_their_own_syntax() {
        assert!(gpu_args(0, "docker").is_empty());
        assert_eq!(gpu_args(2, "docker"), ["--gpus", "2"]);
        assert_eq!(
            gpu_args(2, "/usr/bin/podman"),
            [
                "--device",
                "nvidia.com/gpu=0",
                "--device",
                "nvidia.com/gpu=1"
            ]
        );
    }
}
