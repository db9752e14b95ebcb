//! Named models, loaded once at startup and shared by every instance.
//!
//! Loading a graph costs milliseconds to seconds; opening one by name must
//! cost nothing. So the model directory is scanned once: each model file, or
//! each folder holding one model file, becomes a graph that guests open with
//! wasi-nn `load-by-name` and that V2 clients address by the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::formats::{self, Format};
use crate::backend::{Backend, BackendError, Backends, Graph, Target};

/// One preloaded model.
pub struct ModelEntry {
    /// The name guests and clients use.
    pub name: String,
    /// The V2 version string (models here have one version, "1").
    pub version: String,
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

/// The preloaded models, by name.
#[derive(Default)]
pub struct ModelRegistry {
    entries: BTreeMap<String, ModelEntry>,
}

impl ModelRegistry {
    /// Scans `dir` and loads every model a backend recognizes. Files no
    /// backend recognizes are skipped (and logged).
    pub fn load_dir(dir: &Path, backends: &Backends) -> Result<Self, RegistryError> {
        let found = discover(dir, backends)?;
        // A setting that names no file is a typo, not a no-op.
        if let Some(file) = backends
            .overridden()
            .find(|f| !found.iter().any(|(_, p, _)| p.ends_with(f)))
        {
            let present: Vec<String> = found
                .iter()
                .filter_map(|(_, p, _)| p.strip_prefix(dir).ok())
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
                    .map(|(name, path, backend)| {
                        let target = backends.target_for(name);
                        s.spawn(move || load_one(name, path, backend, target))
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(batch)
                    .map(|(h, (name, path, backend))| {
                        h.join().unwrap_or_else(|_| {
                            Err(RegistryError::Load {
                                name: name.clone(),
                                path: path.clone(),
                                backend: backend.name(),
                                reason: BackendError::Runtime("the loading thread panicked".into()),
                            })
                        })
                    })
                    .collect()
            });
            loaded.extend(results);
        }
        let mut registry = ModelRegistry::default();
        for entry in loaded {
            let entry = entry?;
            if let Some(prev) = registry.entries.get(&entry.name) {
                return Err(RegistryError::Duplicate {
                    name: entry.name,
                    first: prev.path.clone(),
                    second: entry.path,
                });
            }
            registry.entries.insert(entry.name.clone(), entry);
        }
        Ok(registry)
    }

    /// The model with this name.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)
    }

    /// Every model, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values()
    }

    /// Model names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

type Found<'b> = Vec<(String, PathBuf, &'b Arc<dyn Backend>)>;

fn load_one(
    name: &str,
    path: &Path,
    backend: &Arc<dyn Backend>,
    target: Target,
) -> Result<ModelEntry, RegistryError> {
    let failed = |reason| RegistryError::Load {
        name: name.to_string(),
        path: path.to_path_buf(),
        backend: backend.name(),
        reason,
    };
    let started = Instant::now();
    let graph = backend.load_path(path, target).map_err(failed)?;
    let load_seconds = started.elapsed().as_secs_f64();
    tracing::info!(model = %name, path = %path.display(), backend = backend.name(), device = %graph.device(), load_ms = load_seconds * 1e3, "model loaded");
    Ok(ModelEntry {
        name: name.to_string(),
        version: "1".into(),
        path: path.to_path_buf(),
        backend: Arc::clone(backend),
        graph,
        load_seconds,
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let io = |reason| RegistryError::Io {
        path: dir.to_path_buf(),
        reason,
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    paths.sort();
    Ok(paths)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn no_backend(name: String, path: PathBuf, format: &Format) -> RegistryError {
    RegistryError::NoBackend {
        name,
        path,
        framework: format.framework,
        backend: format.backend,
    }
}

/// Names models: `dir/NAME.ext` is `NAME`; `dir/NAME/` with one model file
/// is `NAME`; a folder with several model files gives `NAME_STEM` each.
fn discover<'b>(dir: &Path, backends: &'b Backends) -> Result<Found<'b>, RegistryError> {
    let mut found = Vec::new();
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            let folder = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let files: Vec<PathBuf> = sorted_entries(&path)?
                .into_iter()
                .filter(|p| p.is_file())
                .collect();
            let inner: Found<'b> = files
                .iter()
                .filter_map(|p| backends.for_path(p).map(|b| (stem(p), p.clone(), b)))
                .collect();
            if inner.is_empty()
                && let Some((p, format)) = files
                    .iter()
                    .find_map(|p| formats::of_path(p).map(|f| (p, f)))
            {
                return Err(no_backend(folder, p.clone(), format));
            }
            if inner.len() == 1 {
                found.extend(inner.into_iter().map(|(_, p, b)| (folder.clone(), p, b)));
            } else {
                found.extend(
                    inner
                        .into_iter()
                        .map(|(s, p, b)| (format!("{folder}_{s}"), p, b)),
                );
            }
        } else if let Some(b) = backends.for_path(&path) {
            found.push((stem(&path), path, b));
        } else if let Some(format) = formats::of_path(&path) {
            return Err(no_backend(stem(&path), path, format));
        } else {
            tracing::debug!(path = %path.display(), "not a model for any backend in this build; skipped");
        }
    }
    Ok(found)
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
