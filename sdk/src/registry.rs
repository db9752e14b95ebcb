//! Putting the built images where a cluster can pull them: each is tagged
//! `REGISTRY/sandscore/NAME:TAG` and pushed with the container engine, so
//! the manifests' `[kubernetes] registry` names what is really there.

use std::process::Command;

use crate::SdkError;
use crate::images::{self, Image};

/// One image's fate in a push.
#[derive(Debug)]
pub struct Pushed {
    /// The reference pushed (`REGISTRY/sandscore/NAME:TAG`).
    pub reference: String,
    /// Whether it was pushed; `false` when it was not built here.
    pub pushed: bool,
}

/// `registry` without a scheme or trailing slash, or why it cannot name one
/// (`host[:port][/path]`).
pub fn normalize(registry: &str) -> Result<String, SdkError> {
    let r = registry.trim().trim_end_matches('/');
    if r.contains("://") {
        return Err(SdkError::Invalid(format!(
            "registry '{registry}' has a scheme; name it as host[:port][/path], e.g. registry.example.com/team"
        )));
    }
    let ok = !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/".contains(c))
        && !r.starts_with(['/', ':', '.', '-']);
    if !ok {
        return Err(SdkError::Invalid(format!(
            "registry '{registry}' is not host[:port][/path] (letters, digits, '-', '.', ':', '/')"
        )));
    }
    Ok(r.to_string())
}

fn run(engine: &str, args: &[&str]) -> Result<String, SdkError> {
    let out = Command::new(engine)
        .args(args)
        .output()
        .map_err(|e| SdkError::Engine(format!("{engine} {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(SdkError::Engine(format!(
            "{engine} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `engine` holds `image`.
pub fn built(engine: &str, image: &Image) -> bool {
    run(
        engine,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &image.reference(),
        ],
    )
    .is_ok()
}

/// The manifest's images `names` names (short names, `sandscore/NAME`,
/// or `NAME:TAG`); every image when `names` is empty.
pub fn select(names: &[String]) -> Result<Vec<Image>, SdkError> {
    let all = images::all();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .find(|i| {
                    i.name == *n
                        || i.name.trim_start_matches("sandscore/") == n
                        || i.reference() == *n
                })
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = all
                        .iter()
                        .map(|i| i.name.trim_start_matches("sandscore/"))
                        .collect();
                    SdkError::Invalid(format!(
                        "no image named '{n}'; the images are {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// Tags each of `images` that is built here as `registry/NAME:TAG` and
/// pushes it; one not built is skipped (and said so), one that fails to
/// push stops the run with the engine's words.
pub fn push(
    engine: &str,
    registry: &str,
    images: &[Image],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Pushed>, SdkError> {
    let registry = normalize(registry)?;
    let mut done = Vec::new();
    for image in images {
        let reference = format!("{registry}/{}", image.reference());
        if !built(engine, image) {
            done.push(Pushed {
                reference,
                pushed: false,
            });
            continue;
        }
        progress(&format!("pushing {reference}"));
        run(engine, &["tag", &image.reference(), &reference])?;
        run(engine, &["push", &reference])?;
        done.push(Pushed {
            reference,
            pushed: true,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_host_port_path() {
        assert_eq!(normalize("localhost:5000/").unwrap(), "localhost:5000");
        assert_eq!(
            normalize("registry.example.com/team").unwrap(),
            "registry.example.com/team"
        );
        assert!(normalize("https://r.example").is_err());
        assert!(normalize("").is_err());
        assert!(normalize("a b").is_err());
        assert!(select(&["nonesuch".into()]).is_err());
        assert_eq!(select(&["minimal-cpu".into()]).unwrap().len(), 1);
    }
}
