//! Named models, loaded once at startup and shared by every instance.
//!
//! Loading a graph costs milliseconds to seconds; opening one by name must
//! cost nothing. So the model directory is scanned once ([`discover`]):
//! each model file, each folder holding one model file, and each version a
//! Triton-layout model's policy serves becomes a graph that guests open with
//! wasi-nn `load-by-name` (its highest version) and that V2 clients address
//! by the same name and version.

mod config;
mod discover;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, BackendError, Backends, Graph, Target};
use crate::proto::ModelConfig;
use discover::{Found, discover};

pub use config::{config_json, model_config};

/// One preloaded model.
pub struct ModelEntry {
    /// The name guests and clients use.
    pub name: String,
    /// The V2 version string: "1" outside Triton's layout, else the
    /// version folder's number.
    pub version: String,
    /// The model's `config.pbtxt`, in Triton's layout.
    pub config: Option<Arc<ModelConfig>>,
    /// The file it was read from.
    pub path: PathBuf,
    /// The backend that serves it.
    pub backend: Arc<dyn Backend>,
    /// The loaded graph.
    pub graph: Arc<dyn Graph>,
    /// How long loading took.
    pub load_seconds: f64,
}

/// Why the model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The model directory (or an entry in it) could not be read.
    // The cause is in the message, not a `source`: `{:#}` would print it twice.
    #[error("cannot read model directory {path}: {reason}")]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// Why reading failed.
        reason: std::io::Error,
    },
    /// Two model files give the same model name.
    #[error("two models are named '{name}': {first} and {second}; rename one")]
    Duplicate {
        /// The name both files give.
        name: String,
        /// The first file with that name.
        first: PathBuf,
        /// The second file with that name.
        second: PathBuf,
    },
    /// A model file of a format no backend of this build reads.
    #[error(
        "model '{name}' ({path}) is a {framework} model, and this build has no {framework} backend ({backend})"
    )]
    NoBackend {
        /// The model's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The format, as people call it.
        framework: &'static str,
        /// The backend that reads it, as images name it (`images/images.toml`).
        backend: &'static str,
    },
    /// `--model-backend` names a file that is not in the model directory.
    #[error(
        "--model-backend names {file}, which is not in the model directory (its model files: {present})"
    )]
    UnknownOverride {
        /// The file the setting names.
        file: String,
        /// The model files present, comma-separated.
        present: String,
    },
    /// A backend failed to load a model.
    #[error("model '{name}' ({path}) failed to load in {backend}: {reason}")]
    Load {
        /// The model's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The backend that tried to load it.
        backend: &'static str,
        /// Why loading failed.
        reason: BackendError,
    },
}

/// The preloaded models, by name and version.
#[derive(Default)]
pub struct ModelRegistry {
    entries: BTreeMap<String, BTreeMap<u64, ModelEntry>>,
}

impl ModelRegistry {
    /// Scans `dir` and loads every model a backend recognizes. Files no
    /// backend recognizes are skipped (and logged).
    pub fn load_dir(dir: &Path, backends: &Backends) -> Result<Self, RegistryError> {
        let found = discover(dir, backends)?;
        // A setting that names no file is a typo, not a no-op.
        if let Some(file) = backends
            .overridden()
            .find(|f| !found.iter().any(|m| m.path.ends_with(f)))
        {
            let present: Vec<String> = found
                .iter()
                .filter_map(|m| m.path.strip_prefix(dir).ok())
                .map(|p| p.display().to_string())
                .collect();
            return Err(RegistryError::UnknownOverride {
                file: file.to_string(),
                present: present.join(", "),
            });
        }
        // Loading is CPU work (parsing, graph optimisation): one model per
        // core at a time, so startup takes the longest model, not the sum.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut loaded = Vec::with_capacity(found.len());
        for batch in found.chunks(cores) {
            let results: Vec<Result<ModelEntry, RegistryError>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|m| {
                        let target = backends.target_for(&m.name);
                        s.spawn(move || load_one(m, target))
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(batch)
                    .map(|(h, m)| {
                        h.join().unwrap_or_else(|_| {
                            Err(RegistryError::Load {
                                name: m.name.clone(),
                                path: m.path.clone(),
                                backend: m.backend.name(),
                                reason: BackendError::Runtime("the loading thread panicked".into()),
                            })
                        })
                    })
                    .collect()
            });
            loaded.extend(results);
        }
        let mut registry = ModelRegistry::default();
        for (entry, m) in loaded.into_iter().zip(&found) {
            let entry = entry?;
            let versions = registry.entries.entry(entry.name.clone()).or_default();
            if let Some(prev) = versions.get(&m.version) {
                return Err(RegistryError::Duplicate {
                    name: entry.name,
                    first: prev.path.clone(),
                    second: entry.path,
                });
            }
            versions.insert(m.version, entry);
        }
        Ok(registry)
    }

    /// The model with this name, at its highest version.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)?.values().next_back()
    }

    /// The model with this name at `version` (a version number as text).
    pub fn get_version(&self, name: &str, version: &str) -> Option<&ModelEntry> {
        let v = version.parse::<u64>().ok()?;
        self.entries.get(name)?.get(&v)
    }

    /// The versions served of `name`, ascending.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.entries
            .get(name)
            .map(|v| v.keys().map(u64::to_string).collect())
            .unwrap_or_default()
    }

    /// Every model version, by name, then version.
    pub fn iter(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values().flat_map(BTreeMap::values)
    }

    /// Model names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Number of model versions.
    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    /// True when no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn load_one(m: &Found<'_>, target: Target) -> Result<ModelEntry, RegistryError> {
    let failed = |reason| RegistryError::Load {
        name: m.name.clone(),
        path: m.path.clone(),
        backend: m.backend.name(),
        reason,
    };
    let started = Instant::now();
    let graph = m.backend.load_path(&m.path, target).map_err(failed)?;
    let load_seconds = started.elapsed().as_secs_f64();
    tracing::info!(model = %m.name, version = m.version, path = %m.path.display(), backend = m.backend.name(), device = %graph.device(), load_ms = load_seconds * 1e3, "model loaded");
    Ok(ModelEntry {
        name: m.name.clone(),
        version: m.version.to_string(),
        config: m.config.clone(),
        path: m.path.clone(),
        backend: Arc::clone(m.backend),
        graph,
        load_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_without_a_backend_names_its_framework_and_backend() {
        let dir = std::env::temp_dir().join(format!("sandscore-registry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("net.pt"), b"x").unwrap();
        std::fs::write(dir.join("notes.json"), br#"{"a": 1}"#).unwrap();
        // A build with no backends at all.
        let err = ModelRegistry::load_dir(&dir, &Backends::default())
            .err()
            .expect("refused");
        assert!(
            matches!(
                &err,
                RegistryError::NoBackend {
                    backend: "pytorch",
                    ..
                }
            ),
            "{err}"
        );
        let err = err.to_string();
        assert!(err.contains("'net'") && err.contains("PyTorch"), "{err}");
        std::fs::remove_file(dir.join("net.pt")).unwrap();
        // Files that are no model of any kind are skipped.
        assert!(ModelRegistry::load_dir(&dir, &Backends::default()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
