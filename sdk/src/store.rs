//! Where deployments are remembered between processes: one JSON file per
//! endpoint under `$SANDSCORE_STATE_DIR` (default
//! `$XDG_STATE_HOME/sandscore` or `~/.local/state/sandscore`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Deployment, SdkError};

/// Where an endpoint runs, and what it takes to reach and remove it. Read
/// from the `target` field and its companions, as state files have always
/// spelled them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "target", rename_all = "lowercase")]
pub enum Placement {
    /// A local server process.
    Local {
        /// Its process id.
        #[serde(default)]
        pid: u32,
        /// Where its output goes.
        #[serde(default)]
        log: PathBuf,
    },
    /// A container of a prebuilt image.
    Container {
        /// The engine that runs it (`docker`, `podman`).
        engine: String,
        /// Its id.
        container: String,
    },
    /// Kubernetes manifests (a Deployment and Service).
    Kubernetes {
        /// Where they were written.
        manifests: PathBuf,
        /// Whether `kubectl apply` took them.
        #[serde(default)]
        applied: bool,
    },
    /// KServe manifests (a ServingRuntime and InferenceService).
    Kserve {
        /// Where they were written.
        manifests: PathBuf,
        /// Whether `kubectl apply` took them.
        #[serde(default)]
        applied: bool,
    },
}

impl Placement {
    /// The target's name, as `deploy --target` and state files spell it.
    pub fn target(&self) -> &'static str {
        match self {
            Placement::Local { .. } => "local",
            Placement::Container { .. } => "container",
            Placement::Kubernetes { .. } => "kubernetes",
            Placement::Kserve { .. } => "kserve",
        }
    }

    /// Whether it runs in a cluster (requests come from inside it).
    pub fn in_cluster(&self) -> bool {
        matches!(
            self,
            Placement::Kubernetes { .. } | Placement::Kserve { .. }
        )
    }
}

/// What is known of one deployed endpoint.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Record {
    /// The deployment's name.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:5001` (in-cluster for Kubernetes).
    pub url: String,
    /// Where it runs.
    #[serde(flatten)]
    pub placement: Placement,
    /// Its gRPC address (`host:port`), where one is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// The deployment as it was deployed.
    pub deployment: Deployment,
}

impl Record {
    /// A record of `d` placed at `placement`, answering at `url`.
    pub fn new(d: &Deployment, placement: Placement, url: String) -> Record {
        Record {
            name: d.name.clone(),
            url,
            placement,
            grpc: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_of_every_earlier_shape_still_read() {
        let d = serde_json::json!({
            "api_version": "sandscore/v1", "name": "m", "module": "m.wasm",
            "model_dir": null, "image": null, "port": null, "sample": null,
            "gpu_fallback": null,
        });
        let old = serde_json::json!({
            "name": "m", "target": "container", "url": "http://127.0.0.1:1",
            "pid": 0, "log": "", "container": "abc", "engine": "docker",
            "manifests": null, "applied": false, "deployment": d,
        });
        let r: Record = serde_json::from_value(old).expect("an old container record");
        assert_eq!(
            r.placement,
            Placement::Container {
                engine: "docker".into(),
                container: "abc".into()
            }
        );
        let old = serde_json::json!({
            "name": "m", "target": "kserve", "url": "http://m-predictor.default.svc.cluster.local",
            "pid": 0, "log": "", "container": null, "engine": null,
            "manifests": "k8s/m", "applied": true, "deployment": d,
        });
        let r: Record = serde_json::from_value(old).expect("an old kserve record");
        assert!(r.placement.in_cluster() && r.placement.target() == "kserve");
        let again: Record =
            serde_json::from_str(&serde_json::to_string(&r).expect("write")).expect("read");
        assert_eq!(again, r);
    }
}
