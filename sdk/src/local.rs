//! The local target: the runtime as a background process on this machine.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::check::CheckReport;
use crate::http::ready;
use crate::store::{self, Placement, Record};
use crate::{Deployment, SdkError};

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
) -> Result<Record, SdkError> {
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
        // Several local deployments share the host: HTTP only (the
        // container and cluster targets serve gRPC on their own 8001).
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--grpc-port", "0"])
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
    let placement = Placement::Local {
        pid,
        log: log.clone(),
    };
    let record = Record::new(d, placement, url);
    while !ready(&record.url) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Err(fail(&mut child, "the server exited while loading".into()));
        }
        if Instant::now() > deadline {
            return Err(fail(&mut child, "it was not ready within 120 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    store::save(&record)?;
    Ok(record)
}

/// Whether a process is alive (not gone and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

/// Whether `pid` is still a sandscore server (a pid can be reused after
/// the server is gone).
fn is_server(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    alive(pid)
        && args.iter().any(|a| *a == b"serve")
        && args.iter().any(|a| a.ends_with(b"sandscore"))
}

/// Stops the server `pid` (SIGTERM, 35 s to drain in-flight requests, then
/// SIGKILL), if it is still one.
pub fn stop(pid: u32) {
    if !is_server(pid) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(35);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
