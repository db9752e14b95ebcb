//! The local target: the runtime as a background process on this machine.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::check::CheckReport;
use crate::endpoint::alive;
use crate::store::{self, Record};
use crate::{Deployment, Endpoint, SdkError};

/// Runs `sandscore check` for the deployment (the module implements the
/// world, every model loads, `init` runs), then scores its sample request
/// when it names one.
pub fn validate(d: &Deployment, runtime: &Path) -> Result<CheckReport, SdkError> {
    d.check_fields().map_err(SdkError::Invalid)?;
    let run = |cmd: &mut Command| {
        cmd.output().map_err(|e| SdkError::Runtime {
            binary: runtime.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let out = run(Command::new(runtime)
        .arg("check")
        .arg("--format")
        .arg("json")
        .args(d.runtime_args()))?;
    if !out.status.success() {
        return Err(SdkError::Invalid(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let report = CheckReport::parse(&out.stdout).map_err(|reason| SdkError::Runtime {
        binary: runtime.to_path_buf(),
        reason,
    })?;
    if let Some(sample) = &d.sample {
        let scored = run(Command::new(runtime)
            .arg("score")
            .args(d.runtime_args())
            .arg("--input")
            .arg(sample))?;
        sample_result(sample, &scored)?;
    }
    Ok(report)
}

/// Whether the sample request scored, or why it failed.
pub(crate) fn sample_result(sample: &Path, out: &std::process::Output) -> Result<(), SdkError> {
    if out.status.success() {
        Ok(())
    } else {
        // The module's answer is on stdout, the runtime's verdict on stderr.
        Err(SdkError::Invalid(format!(
            "the sample request {} did not score: {} {}",
            sample.display(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Validates, starts the server in the background, waits until it is
/// ready, and records it. On any failure nothing is left running.
pub fn deploy(
    d: &Deployment,
    runtime: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Endpoint, SdkError> {
    if store::load(&d.name).is_ok() {
        return Err(SdkError::Exists(d.name.clone()));
    }
    progress("validating module and models");
    validate(d, runtime)?;
    let port = d.port.unwrap_or(0);
    if port != 0 && TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(SdkError::PortTaken(port));
    }
    let dir = store::dir();
    std::fs::create_dir_all(&dir).map_err(|e| SdkError::Store(e.to_string()))?;
    let log = dir.join(format!("{}.log", d.name));
    let file = std::fs::File::create(&log).map_err(|e| SdkError::Store(e.to_string()))?;
    let err_file = file
        .try_clone()
        .map_err(|e| SdkError::Store(e.to_string()))?;
    progress("starting the server");
    let mut child = Command::new(runtime)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(d.runtime_args())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .process_group(0)
        .spawn()
        .map_err(|e| SdkError::Runtime {
            binary: runtime.to_path_buf(),
            reason: e.to_string(),
        })?;
    let pid = child.id();
    progress("waiting for readiness");
    let deadline = Instant::now() + Duration::from_secs(120);
    let fail = |child: &mut std::process::Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        SdkError::NotReady(format!("{why}; the server said:\n{}", tail(&text)))
    };
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            break url.trim().to_string();
        }
        if !alive(pid) || matches!(child.try_wait(), Ok(Some(_))) {
            return Err(fail(&mut child, "the server exited".into()));
        }
        if Instant::now() > deadline {
            return Err(fail(&mut child, "it did not listen within 120 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let record = Record {
        pid,
        log: log.clone(),
        ..Record::new(d, "local", url)
    };
    let endpoint = Endpoint { record };
    while !endpoint.health() {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Err(fail(&mut child, "the server exited while loading".into()));
        }
        if Instant::now() > deadline {
            return Err(fail(&mut child, "it was not ready within 120 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    store::save(&endpoint.record)?;
    Ok(endpoint)
}
