//! Where deployments are remembered between processes: one JSON file per
//! endpoint under `$SANDSCORE_STATE_DIR` (default
//! `$XDG_STATE_HOME/sandscore` or `~/.local/state/sandscore`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Deployment, SdkError};

/// What is known of one deployed endpoint.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Record {
    pub name: String,
    /// `local`, `container` or `kubernetes`.
    pub target: String,
    /// Base URL, e.g. `http://127.0.0.1:5001` (in-cluster for Kubernetes).
    pub url: String,
    /// Process id of a local server.
    #[serde(default)]
    pub pid: u32,
    /// Where a local server's output goes.
    #[serde(default)]
    pub log: PathBuf,
    /// Container id, and the engine (`docker`, `podman`) that runs it.
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub engine: Option<String>,
    /// Folder of the written Kubernetes manifests, and whether `kubectl
    /// apply` took them.
    #[serde(default)]
    pub manifests: Option<PathBuf>,
    #[serde(default)]
    pub applied: bool,
    pub deployment: Deployment,
}

impl Record {
    /// A record of `d` deployed to `target` at `url`.
    pub fn new(d: &Deployment, target: &str, url: String) -> Record {
        Record {
            name: d.name.clone(),
            target: target.into(),
            url,
            pid: 0,
            log: PathBuf::new(),
            container: None,
            engine: None,
            manifests: None,
            applied: false,
            deployment: d.clone(),
        }
    }
}

/// The state directory.
pub fn dir() -> PathBuf {
    std::env::var_os("SANDSCORE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(std::env::temp_dir)
                .join("sandscore")
        })
}

fn path(name: &str) -> PathBuf {
    dir().join(format!("{name}.json"))
}

/// Saves a record.
pub fn save(r: &Record) -> Result<(), SdkError> {
    let err = |e: std::io::Error| SdkError::Store(format!("{}: {e}", dir().display()));
    std::fs::create_dir_all(dir()).map_err(err)?;
    let text = serde_json::to_string_pretty(r).map_err(|e| SdkError::Store(e.to_string()))?;
    std::fs::write(path(&r.name), text).map_err(err)
}

/// The record of `name`.
pub fn load(name: &str) -> Result<Record, SdkError> {
    let text = std::fs::read_to_string(path(name)).map_err(|_| SdkError::Unknown(name.into()))?;
    serde_json::from_str(&text)
        .map_err(|e| SdkError::Store(format!("{}: {e}", path(name).display())))
}

/// Forgets `name`.
pub fn remove(name: &str) -> Result<(), SdkError> {
    std::fs::remove_file(path(name)).map_err(|_| SdkError::Unknown(name.into()))
}

/// Every record, by name.
pub fn list() -> Vec<Record> {
    let mut out: Vec<Record> = std::fs::read_dir(dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|t| serde_json::from_str(&t).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a: &Record, b: &Record| a.name.cmp(&b.name));
    out
}
