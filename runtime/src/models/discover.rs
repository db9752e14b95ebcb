//! What the model directory holds, and under which names and versions:
//! flat files (`NAME.onnx`), a folder with one model (`NAME/…`), and
//! Triton's repository layout (`NAME/config.pbtxt`, `NAME/<version>/model.*`,
//! a SavedModel folder as a version), with its version policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::RegistryError;
use super::config::{self, Policy};
use crate::backend::formats::{self, Format};
use crate::backend::{Backend, BackendError, Backends};
use crate::proto::ModelConfig;

/// A model file to load.
pub struct Found<'b> {
    /// The name clients use.
    pub name: String,
    /// Its version (1 outside Triton's layout).
    pub version: u64,
    /// The file the backend reads.
    pub path: PathBuf,
    /// The backend that reads it.
    pub backend: &'b Arc<dyn Backend>,
    /// The model's `config.pbtxt`, in Triton's layout.
    pub config: Option<Arc<ModelConfig>>,
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
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

/// A model's numbered version folders, if it is in Triton's layout.
fn versions(folder: &Path) -> Result<Vec<(u64, PathBuf)>, RegistryError> {
    let mut out: Vec<(u64, PathBuf)> = sorted_entries(folder)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| file_name(&p).parse::<u64>().ok().map(|v| (v, p)))
        .collect();
    out.sort_by_key(|(v, _)| *v);
    Ok(out)
}

/// The one model file of a version folder: a file in it, or in a folder
/// of it (`model.savedmodel/saved_model.pb`).
fn version_model<'b>(
    name: &str,
    version: u64,
    dir: &Path,
    backends: &'b Backends,
) -> Result<(PathBuf, &'b Arc<dyn Backend>), RegistryError> {
    let mut files = Vec::new();
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            files.extend(sorted_entries(&p)?.into_iter().filter(|f| f.is_file()));
        } else {
            files.push(p);
        }
    }
    let mut models = files
        .iter()
        .filter_map(|p| backends.for_path(p).map(|b| (p.clone(), b)));
    match (models.next(), models.next()) {
        (Some(one), None) => Ok(one),
        (Some((first, _)), Some((second, _))) => Err(RegistryError::Duplicate {
            name: format!("{name} version {version}"),
            first,
            second,
        }),
        (None, _) => match files
            .iter()
            .find_map(|p| formats::of_path(p).map(|f| (p, f)))
        {
            Some((p, format)) => Err(no_backend(name.to_string(), p.clone(), format)),
            None => Err(RegistryError::Load {
                name: name.to_string(),
                path: dir.to_path_buf(),
                backend: "none",
                reason: BackendError::InvalidModel(format!(
                    "version {version} holds no model file this build reads"
                )),
            }),
        },
    }
}

/// A model in Triton's layout: the versions its policy serves.
fn triton_model<'b>(
    folder: &Path,
    available: Vec<(u64, PathBuf)>,
    backends: &'b Backends,
    found: &mut Vec<Found<'b>>,
) -> Result<(), RegistryError> {
    let name = file_name(folder);
    let config = config::read(&name, folder)?.map(Arc::new);
    let policy = config.as_deref().map_or(Policy::Latest(1), Policy::of);
    for (version, dir) in policy.select(available) {
        let (path, backend) = version_model(&name, version, &dir, backends)?;
        found.push(Found {
            name: name.clone(),
            version,
            path,
            backend,
            config: config.clone(),
        });
    }
    Ok(())
}

/// Names models: `dir/NAME.ext` is `NAME`; `dir/NAME/` with one model file
/// is `NAME`; a folder with several model files gives `NAME_STEM` each; a
/// folder with numbered version folders is a model in Triton's layout.
pub fn discover<'b>(dir: &Path, backends: &'b Backends) -> Result<Vec<Found<'b>>, RegistryError> {
    let mut found = Vec::new();
    for path in sorted_entries(dir)? {
        entry(&path, backends, &mut found)?;
    }
    Ok(found)
}

/// The model files of the model `name` alone (its entry's errors only).
pub fn discover_named<'b>(
    dir: &Path,
    name: &str,
    backends: &'b Backends,
) -> Result<Vec<Found<'b>>, RegistryError> {
    let mut found = Vec::new();
    for path in sorted_entries(dir)? {
        // A folder of several models names them `FOLDER_STEM`.
        let folder = path.is_dir().then(|| file_name(&path));
        let own = stem(&path) == name
            || folder.is_some_and(|f| {
                name.strip_prefix(f.as_str())
                    .is_some_and(|r| r.starts_with('_'))
            });
        if own {
            entry(&path, backends, &mut found)?;
        }
    }
    found.retain(|m| m.name == name);
    Ok(found)
}

/// The model names the repository entry `entry` (a file stem or a folder
/// name) gives, without loading them; the entry's own name when it gives
/// none or cannot be read, so that loading it says why.
pub fn entry_model_names(dir: &Path, entry: &str, backends: &Backends) -> Vec<String> {
    let mut found = Vec::new();
    for path in sorted_entries(dir).unwrap_or_default() {
        let name = if path.is_dir() {
            file_name(&path)
        } else {
            stem(&path)
        };
        if name == entry && self::entry(&path, backends, &mut found).is_err() {
            return vec![entry.to_string()];
        }
    }
    let mut names: Vec<String> = found.into_iter().map(|m| m.name).collect();
    names.dedup();
    if names.is_empty() {
        names.push(entry.to_string());
    }
    names
}

/// The names the repository's entries would give, without loading or
/// checking them (for the index of models not loaded).
pub fn model_names(dir: &Path, backends: &Backends) -> Vec<String> {
    sorted_entries(dir)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.is_dir() || backends.for_path(p).is_some() || formats::of_path(p).is_some())
        .map(|p| if p.is_dir() { file_name(p) } else { stem(p) })
        .collect()
}

fn entry<'b>(
    path: &Path,
    backends: &'b Backends,
    found: &mut Vec<Found<'b>>,
) -> Result<(), RegistryError> {
    let flat = |name: String, path: PathBuf, backend| Found {
        name,
        version: 1,
        path,
        backend,
        config: None,
    };
    if path.is_dir() {
        let available = versions(path)?;
        if !available.is_empty() {
            return triton_model(path, available, backends, found);
        }
        let folder = file_name(path);
        let files: Vec<PathBuf> = sorted_entries(path)?
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        let inner: Vec<(String, PathBuf, &Arc<dyn Backend>)> = files
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
            found.extend(
                inner
                    .into_iter()
                    .map(|(_, p, b)| flat(folder.clone(), p, b)),
            );
        } else {
            found.extend(
                inner
                    .into_iter()
                    .map(|(s, p, b)| flat(format!("{folder}_{s}"), p, b)),
            );
        }
    } else if let Some(b) = backends.for_path(path) {
        found.push(flat(stem(path), path.to_path_buf(), b));
    } else if let Some(format) = formats::of_path(path) {
        return Err(no_backend(stem(path), path.to_path_buf(), format));
    } else {
        tracing::debug!(path = %path.display(), "not a model for any backend in this build; skipped");
    }
    Ok(())
}
