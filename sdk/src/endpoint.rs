//! A deployed endpoint: score, infer, health, logs, delete.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::SdkError;
use crate::store::{self, Record};

/// A handle on a deployed endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub record: Record,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn post(url: &str, body: &Value) -> Result<Value, SdkError> {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|e| SdkError::Http(format!("POST {url}: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .read_to_string()
        .map_err(|e| SdkError::Http(e.to_string()))?;
    if status != 200 {
        return Err(SdkError::Http(format!(
            "POST {url} answered {status}: {text}"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| SdkError::Http(format!("POST {url}: not JSON ({e}): {text}")))
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

impl Endpoint {
    /// The endpoint deployed as `name`.
    pub fn get(name: &str) -> Result<Endpoint, SdkError> {
        Ok(Endpoint {
            record: store::load(name)?,
        })
    }

    /// `POST /score` with a JSON body.
    pub fn score(&self, body: &Value) -> Result<Value, SdkError> {
        post(&format!("{}/score", self.record.url), body)
    }

    /// `POST /v2/models/{model}/infer` with a V2 request body.
    pub fn infer(&self, model: &str, body: &Value) -> Result<Value, SdkError> {
        post(
            &format!("{}/v2/models/{model}/infer", self.record.url),
            body,
        )
    }

    /// Whether `/v2/health/ready` answers 200.
    pub fn health(&self) -> bool {
        agent()
            .get(format!("{}/v2/health/ready", self.record.url))
            .call()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    }

    /// The server's output so far.
    pub fn logs(&self) -> Result<String, SdkError> {
        let r = &self.record;
        match (r.target.as_str(), &r.engine, &r.container) {
            ("container", Some(engine), Some(id)) => crate::container::logs(engine, id),
            ("kubernetes" | "kserve", _, _) => Err(SdkError::Engine(format!(
                "logs of a cluster deployment come from the cluster: kubectl logs -l app.kubernetes.io/instance={}",
                r.name
            ))),
            _ => std::fs::read_to_string(&r.log)
                .map_err(|e| SdkError::Store(format!("{}: {e}", r.log.display()))),
        }
    }

    /// `running` or `stopped` for a process or container; `applied` or
    /// `written` for cluster manifests.
    pub fn state(&self) -> &'static str {
        let r = &self.record;
        let up = match (r.target.as_str(), &r.engine, &r.container) {
            ("container", Some(engine), Some(id)) => crate::container::running(engine, id),
            ("kubernetes" | "kserve", _, _) => {
                return if r.applied { "applied" } else { "written" };
            }
            _ => alive(r.pid),
        };
        if up { "running" } else { "stopped" }
    }

    /// Whether the recorded process is still this endpoint's server (a pid
    /// can be reused after the server is gone).
    fn is_server(&self) -> bool {
        let cmdline =
            std::fs::read(format!("/proc/{}/cmdline", self.record.pid)).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        alive(self.record.pid)
            && args.iter().any(|a| *a == b"serve")
            && args.iter().any(|a| a.ends_with(b"sandscore"))
    }

    /// Stops the server (SIGTERM, so in-flight requests finish), removes
    /// its container or cluster objects, and forgets it.
    pub fn delete(self) -> Result<(), SdkError> {
        let r = &self.record;
        match (r.target.as_str(), &r.engine, &r.container) {
            ("container", Some(engine), Some(id)) => crate::container::remove(engine, id)?,
            ("kubernetes" | "kserve", _, _) => crate::kubernetes::remove(r)?,
            _ => self.stop_process(),
        }
        store::remove(&self.record.name)
    }

    fn stop_process(&self) {
        let pid = self.record.pid;
        if self.is_server() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(35);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}
