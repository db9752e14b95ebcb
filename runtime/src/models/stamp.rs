//! How a poll sees that a model changed without reading it: each entry of
//! the repository (a model file, or a model's folder) gets a stamp of its
//! files' relative paths, sizes and modification times. A changed stamp is
//! a model to load again; so is a failed model whose files changed, which
//! is how a poll retries a model copied in half-written.
//!
//! Bounded: at most [`MAX_DEPTH`] folders deep and [`MAX_FILES`] files an
//! entry are looked at (past that the stamp covers what was seen), and
//! symbolic links are stamped as links, never followed.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Deepest folder level looked at below an entry.
pub const MAX_DEPTH: usize = 8;
/// Most files stamped per entry.
pub const MAX_FILES: usize = 10_000;

/// The stamp of every entry in `dir`, by its file or folder name (a file's
/// without its extension, as models are named).
pub fn stamps(dir: &Path) -> BTreeMap<String, u64> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for entry in read.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = if is_dir {
            path.file_name()
        } else {
            path.file_stem()
        };
        let Some(name) = name.map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let mut h = DefaultHasher::new();
        let mut files = 0;
        walk(&path, Path::new(""), 0, &mut files, &mut h);
        // Several files may share a stem (`m.onnx`, `m.json`): one stamp.
        let s = out.entry(name).or_insert(0u64);
        *s ^= h.finish();
    }
    out
}

fn walk(path: &Path, rel: &Path, depth: usize, files: &mut usize, h: &mut DefaultHasher) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if depth >= MAX_DEPTH {
            return;
        }
        let Ok(read) = std::fs::read_dir(path) else {
            return;
        };
        let mut children: Vec<_> = read.flatten().map(|e| e.file_name()).collect();
        children.sort();
        for child in children {
            if *files >= MAX_FILES {
                return;
            }
            walk(&path.join(&child), &rel.join(&child), depth + 1, files, h);
        }
        return;
    }
    *files += 1;
    rel.hash(h);
    meta.len().hash(h);
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .hash(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_changes_with_its_entry_only() {
        let dir = std::env::temp_dir().join(format!("sandscore-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("folder/1")).unwrap();
        std::fs::write(dir.join("flat.onnx"), b"a").unwrap();
        std::fs::write(dir.join("folder/1/model.onnx"), b"b").unwrap();
        let before = stamps(&dir);
        assert_eq!(before.keys().collect::<Vec<_>>(), ["flat", "folder"]);
        assert_eq!(stamps(&dir), before, "nothing changed");
        std::fs::write(dir.join("folder/1/model.onnx"), b"bb").unwrap();
        let after = stamps(&dir);
        assert_eq!(after["flat"], before["flat"]);
        assert_ne!(after["folder"], before["folder"]);
        std::fs::create_dir_all(dir.join("folder/2")).unwrap();
        std::fs::write(dir.join("folder/2/model.onnx"), b"bb").unwrap();
        assert_ne!(stamps(&dir)["folder"], after["folder"], "a version added");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
