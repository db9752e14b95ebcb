//! Named models, loaded at start (and, under explicit or poll model
//! control, while serving) and shared by every instance.
//!
//! Loading a graph costs milliseconds to seconds; opening one by name must
//! cost nothing. So the model directory is scanned up front ([`discover`]):
//! each model file, each folder holding one model file, and each version a
//! Triton-layout model's policy serves becomes a graph that guests open with
//! wasi-nn `load-by-name` (its highest version) and that V2 clients address
//! by the same name and version.

mod config;
mod discover;
mod stamp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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
    /// What its inference has cost lately (where it runs from async code).
    pub pace: Arc<crate::blocking::Pace>,
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

type Versions = BTreeMap<u64, Arc<ModelEntry>>;

/// The models served, by name and version. Loads and unloads replace a
/// model's versions at once; a request holding an entry keeps its graph
/// until it is done, so unloading never cuts one short.
#[derive(Default)]
pub struct ModelRegistry {
    /// The model directory (repository), for later loads.
    dir: Option<PathBuf>,
    /// The backends models load with.
    backends: Backends,
    entries: RwLock<BTreeMap<String, Versions>>,
    /// Models of the repository that are not served, and why.
    unavailable: RwLock<BTreeMap<String, String>>,
    /// Each repository entry's files as last loaded ([`stamp`]), for polls.
    stamps: Mutex<BTreeMap<String, u64>>,
    /// Another name for the one model served ([`ModelRegistry::with_alias`]).
    alias: Option<String>,
}

/// One line of the repository index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// Its version; empty for a model that is not loaded.
    pub version: String,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is unavailable (unloaded, or its load error).
    pub reason: String,
}

/// Loads the found models, one per core at a time (loading is CPU work:
/// parsing, graph optimisation), so it takes the longest model, not the
/// sum.
fn load_all(found: &[Found<'_>], backends: &Backends) -> Vec<Result<ModelEntry, RegistryError>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut loaded = Vec::with_capacity(found.len());
    for batch in found.chunks(cores) {
        let results: Vec<Result<ModelEntry, RegistryError>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|m| {
                    let target = backends.target_for(&m.name);
                    let batching = m
                        .config
                        .as_deref()
                        .and_then(crate::backend::batch::BatchSettings::from_config)
                        .or_else(|| backends.batching_for(&m.name).cloned());
                    s.spawn(move || load_one(m, target, batching))
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
    loaded
}

/// The loaded models by name, refusing two files for one name and version.
fn group(
    found: &[Found<'_>],
    loaded: Vec<Result<ModelEntry, RegistryError>>,
) -> Result<BTreeMap<String, Versions>, RegistryError> {
    let mut entries: BTreeMap<String, Versions> = BTreeMap::new();
    for (entry, m) in loaded.into_iter().zip(found) {
        let entry = entry?;
        let versions = entries.entry(entry.name.clone()).or_default();
        if let Some(prev) = versions.get(&m.version) {
            return Err(RegistryError::Duplicate {
                name: entry.name,
                first: prev.path.clone(),
                second: entry.path.clone(),
            });
        }
        versions.insert(m.version, Arc::new(entry));
    }
    Ok(entries)
}

impl ModelRegistry {
    /// Scans `dir` and loads every model a backend recognizes. Files no
    /// backend recognizes are skipped (and logged).
    pub fn load_dir(dir: &Path, backends: &Backends) -> Result<Self, RegistryError> {
        ModelRegistry::open(dir, backends, None)
    }

    /// Scans `dir` and loads the models named in `only` (every model when
    /// `None`, or when it holds `*`): Triton's explicit model control.
    pub fn open(
        dir: &Path,
        backends: &Backends,
        only: Option<&[String]>,
    ) -> Result<Self, RegistryError> {
        let everything = only.is_none_or(|o| o.iter().any(|n| n == "*"));
        // Only what is asked for is looked at: a broken model nobody names
        // does not stop the start.
        let found: Vec<Found<'_>> = if everything {
            discover(dir, backends)?
        } else {
            let mut found = Vec::new();
            for name in only.unwrap_or_default() {
                found.extend(discover::discover_named(dir, name, backends)?);
            }
            found
        };
        // A setting that names no file is a typo, not a no-op.
        if let Some(file) = backends
            .overridden()
            .find(|f| !found.iter().any(|m| m.path.ends_with(f)))
            && everything
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
        if let Some(missing) = only
            .unwrap_or_default()
            .iter()
            .find(|n| *n != "*" && !found.iter().any(|m| &m.name == *n))
        {
            return Err(RegistryError::Load {
                name: missing.clone(),
                path: dir.to_path_buf(),
                backend: "none",
                reason: BackendError::InvalidModel(
                    "no such model in the repository (--load-model)".into(),
                ),
            });
        }
        // Stamped before loading: a file still being written when it was
        // read stamps differently on the next poll, which loads it again.
        let stamps = stamp::stamps(dir);
        let loaded = load_all(&found, backends);
        let entries = group(&found, loaded)?;
        Ok(ModelRegistry {
            dir: Some(dir.to_path_buf()),
            backends: backends.clone(),
            entries: RwLock::new(entries),
            unavailable: RwLock::new(BTreeMap::new()),
            stamps: Mutex::new(stamps),
            alias: None,
        })
    }

    /// Lets the model served answer to `alias` too, while it is the only
    /// one (KServe names a model after its InferenceService); a repository
    /// of several models keeps their own names, and the log says so.
    pub fn with_alias(mut self, alias: Option<String>) -> Self {
        if let Some(a) = &alias {
            let names = self.names();
            match names.as_slice() {
                [one] if one != a => {
                    tracing::info!(model = %one, alias = %a, "the model answers to its deployment's name too")
                }
                [_] => {}
                _ => tracing::warn!(
                    alias = %a,
                    models = ?names,
                    "--model-name names one model, and the repository serves {}: each keeps its own name",
                    names.len()
                ),
            }
        }
        self.alias = alias;
        self
    }

    /// The versions of `name`, or of the one model when `name` is its alias.
    fn lookup<'a>(
        &self,
        entries: &'a BTreeMap<String, Versions>,
        name: &str,
    ) -> Option<&'a Versions> {
        entries.get(name).or_else(|| {
            (self.alias.as_deref() == Some(name) && entries.len() == 1)
                .then(|| entries.values().next())
                .flatten()
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Versions>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Versions>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark(&self, name: &str, why: Option<String>) {
        let mut u = self
            .unavailable
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match why {
            Some(why) => u.insert(name.to_string(), why),
            None => u.remove(name),
        };
    }

    /// Loads (or reloads) `name` from the repository: every version its
    /// policy serves replaces the ones served now. Blocking. On failure the
    /// model's current versions stay, and the index says why.
    pub fn load(&self, name: &str) -> Result<(), RegistryError> {
        let Some(dir) = &self.dir else {
            return Err(RegistryError::Load {
                name: name.to_string(),
                path: PathBuf::new(),
                backend: "none",
                reason: BackendError::InvalidModel("there is no model repository".into()),
            });
        };
        let loaded = discover::discover_named(dir, name, &self.backends).and_then(|found| {
            if found.is_empty() {
                return Err(RegistryError::Load {
                    name: name.to_string(),
                    path: dir.clone(),
                    backend: "none",
                    reason: BackendError::InvalidModel("no such model in the repository".into()),
                });
            }
            let loaded = load_all(&found, &self.backends);
            group(&found, loaded)
        });
        match loaded {
            Ok(mut entries) => {
                let versions = entries.remove(name).unwrap_or_default();
                self.write().insert(name.to_string(), versions);
                self.mark(name, None);
                Ok(())
            }
            Err(e) => {
                self.mark(name, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Stops serving `name`; requests already running on it finish.
    /// Whether it was served.
    pub fn unload(&self, name: &str) -> bool {
        let was = self.write().remove(name).is_some();
        if was {
            self.mark(name, Some("unloaded".into()));
        }
        was
    }

    /// The repository's models: every served version `READY`, and the
    /// models not served with why.
    pub fn index(&self) -> Vec<IndexEntry> {
        let mut out: Vec<IndexEntry> = self
            .iter()
            .iter()
            .map(|e| IndexEntry {
                name: e.name.clone(),
                version: e.version.clone(),
                state: "READY",
                reason: String::new(),
            })
            .collect();
        let served = self.names();
        let mut known: Vec<String> = self
            .unavailable
            .read()
            .map(|u| {
                u.iter()
                    .filter(|(n, _)| !served.contains(n))
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(dir) = &self.dir {
            let more: Vec<String> = discover::model_names(dir, &self.backends)
                .into_iter()
                .filter(|n| !served.contains(n) && !known.contains(n))
                .collect();
            known.extend(more);
        }
        for name in known {
            let reason = self
                .unavailable
                .read()
                .ok()
                .and_then(|u| u.get(&name).cloned())
                .unwrap_or_else(|| "not loaded".into());
            out.push(IndexEntry {
                name,
                version: String::new(),
                state: "UNAVAILABLE",
                reason,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        out
    }

    /// What a poll loads and unloads: the models of every repository
    /// entry added or changed since it was last looked at (a model served
    /// is reloaded, a model that failed is tried again), and the names
    /// served that are no longer in it. Each entry counts as seen once
    /// returned, so a model that fails again waits for its next change.
    pub fn changes(&self) -> (Vec<String>, Vec<String>) {
        let Some(dir) = &self.dir else {
            return (Vec::new(), Vec::new());
        };
        let present = discover::model_names(dir, &self.backends);
        let now = stamp::stamps(dir);
        let served = self.names();
        let mut seen = self
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut added = Vec::new();
        for entry in &present {
            let Some(&stamp) = now.get(entry) else {
                continue;
            };
            if seen.insert(entry.clone(), stamp) != Some(stamp) {
                added.extend(discover::entry_model_names(dir, entry, &self.backends));
            }
        }
        seen.retain(|e, _| now.contains_key(e));
        let removed = served
            .into_iter()
            .filter(|n| {
                !present
                    .iter()
                    .any(|p| p == n || n.starts_with(&format!("{p}_")))
            })
            .collect();
        (added, removed)
    }

    /// The model with this name, at its highest version.
    pub fn get(&self, name: &str) -> Option<Arc<ModelEntry>> {
        self.lookup(&self.read(), name)?
            .values()
            .next_back()
            .cloned()
    }

    /// The model with this name at `version` (a version number as text).
    pub fn get_version(&self, name: &str, version: &str) -> Option<Arc<ModelEntry>> {
        let v = version.parse::<u64>().ok()?;
        self.lookup(&self.read(), name)?.get(&v).cloned()
    }

    /// The versions served of `name`, ascending.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.lookup(&self.read(), name)
            .map(|v| v.keys().map(u64::to_string).collect())
            .unwrap_or_default()
    }

    /// Every model version now served, by name, then version.
    pub fn iter(&self) -> Vec<Arc<ModelEntry>> {
        self.read()
            .values()
            .flat_map(|v| v.values().cloned())
            .collect()
    }

    /// Model names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Number of model versions.
    pub fn len(&self) -> usize {
        self.read().values().map(BTreeMap::len).sum()
    }

    /// True when no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

fn load_one(
    m: &Found<'_>,
    target: Target,
    batching: Option<crate::backend::batch::BatchSettings>,
) -> Result<ModelEntry, RegistryError> {
    let failed = |reason| RegistryError::Load {
        name: m.name.clone(),
        path: m.path.clone(),
        backend: m.backend.name(),
        reason,
    };
    let started = Instant::now();
    let mut graph = m.backend.load_path(&m.path, target).map_err(failed)?;
    if let Some(settings) = batching {
        let batched =
            crate::backend::batch::Batched::new(&m.name, graph, settings).map_err(failed)?;
        graph = Arc::new(batched);
    }
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
        pace: Arc::default(),
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
