//! A `score.py`'s `requirements.txt`, resolved for the Python runtime
//! without an image build: what the runtime bundles satisfies a line (and
//! says so when the version differs), what the host runs natively
//! (`onnxruntime`, `xgboost`) or the server itself provides (`azureml-*`)
//! is skipped, and the rest must be pure-Python wheels, pinned, installed
//! by pip into a packages folder the guest sees read-only. The folder is
//! cached by the file's content and stamped with it, so a container or pod
//! given the folder never resolves again.
//!
//! Hostile input here is the file itself: it only ever becomes arguments to
//! `pip install --no-deps --only-binary=:all: --platform any`, which
//! downloads wheels and unpacks them (no build step, no `setup.py` runs).
//! Index options, URLs, paths and editable installs are refused, so a line
//! cannot point pip anywhere but the configured index.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::SdkError;

/// The file a resolved packages folder holds: the sha256 of the
/// requirements it was resolved from.
pub const STAMP: &str = ".sandscore-requirements";

/// Packages the host runs with its native libraries (the guest imports a
/// shim that calls them).
const HOST: [&str; 4] = ["onnxruntime", "onnxruntime-gpu", "xgboost", "xgboost-cpu"];

/// Azure ML's server packages: sandscore plays their part.
const SERVER: [&str; 4] = [
    "azureml-defaults",
    "azureml-inference-server-http",
    "azureml-contrib-services",
    "sandscore",
];

/// A line of the file may hold at most this many characters, and the file
/// this many lines: a requirements file is short.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 2048;

fn fail(line: usize, message: String) -> SdkError {
    SdkError::Python(format!("requirements.txt line {line}: {message}"))
}

/// A package name as PyPI compares them (PEP 503).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '-' | '_' | '.' => {
                if !out.ends_with('-') {
                    out.push('-');
                }
            }
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// What the Python runtime bundles, by normalized name, from its `MANIFEST`
/// (`package NAME VERSION` lines).
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    /// Version of each bundled package.
    pub packages: BTreeMap<String, String>,
}

impl Bundle {
    /// The packages `manifest` lists.
    pub fn parse(manifest: &str) -> Bundle {
        let packages = manifest
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("package"))
                    .then(|| Some((normalize(words.next()?), words.next()?.to_string())))?
            })
            .collect();
        Bundle { packages }
    }

    /// A short list for messages: the packages scripts import most.
    pub fn summary(&self) -> String {
        [
            "numpy",
            "pandas",
            "scipy",
            "scikit-learn",
            "joblib",
            "statsmodels",
            "matplotlib",
        ]
        .iter()
        .filter_map(|n| Some(format!("{n} {}", self.packages.get(*n)?)))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One requirement line.
#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    /// The name as written.
    pub name: String,
    /// The version when pinned with `==`.
    pub pinned: Option<String>,
    /// The line as pip would read it (name, extras and specifier).
    pub spec: String,
    /// `--hash=` options of the line.
    pub hashes: Vec<String>,
    /// Line number in the file (from 1).
    pub line: usize,
}

/// The requirements of `text`: comments, blank lines and continuations as
/// pip reads them; options other than `--hash`, URLs and paths refused.
pub fn parse(text: &str) -> Result<Vec<Requirement>, SdkError> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(fail(i + 1, format!("more than {MAX_LINES} lines")));
        }
        if raw.len() > MAX_LINE {
            return Err(fail(i + 1, format!("longer than {MAX_LINE} characters")));
        }
        if joined.is_empty() {
            start = i + 1;
        }
        match raw.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                continue;
            }
            None => joined.push_str(raw),
        }
        let line = std::mem::take(&mut joined);
        if let Some(r) = parse_line(&line, start)? {
            out.push(r);
        }
    }
    if !joined.is_empty()
        && let Some(r) = parse_line(&joined, start)?
    {
        out.push(r);
    }
    Ok(out)
}

fn parse_line(line: &str, n: usize) -> Result<Option<Requirement>, SdkError> {
    // A comment starts at `#` at the start or after whitespace.
    let mut text = line;
    for (i, _) in line.match_indices('#') {
        if i == 0 || line[..i].ends_with(char::is_whitespace) {
            text = &line[..i];
            break;
        }
    }
    let mut words = text.split_whitespace().peekable();
    let Some(first) = words.peek().copied() else {
        return Ok(None);
    };
    if first.starts_with('-') {
        return Err(fail(
            n,
            format!(
                "`{first}` is not supported here: list pinned packages, one per line (name==version, optionally --hash=sha256:…), from the default index"
            ),
        ));
    }
    let mut spec = String::new();
    let mut hashes = Vec::new();
    for w in words {
        if let Some(h) = w.strip_prefix("--hash=") {
            hashes.push(h.to_string());
        } else if w.starts_with('-') {
            return Err(fail(
                n,
                format!("`{w}` is not supported here (only --hash=sha256:… follows a package)"),
            ));
        } else {
            spec.push_str(w);
        }
    }
    let requirement = spec.split(';').next().unwrap_or_default().to_string();
    let name_end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(requirement.len());
    let name = &requirement[..name_end];
    let rest = &requirement[name_end..];
    let direct = rest.contains('@')
        || requirement.contains("://")
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if direct {
        return Err(fail(
            n,
            format!(
                "`{}` is not a package name with a version: URLs, paths and `name @ …` are not installed (vendor such code beside score.py)",
                spec.trim()
            ),
        ));
    }
    // Extras are ignored: dependencies are never installed implicitly.
    let after_extras = match rest.strip_prefix('[') {
        Some(r) => r.split_once(']').map(|(_, v)| v).unwrap_or(""),
        None => rest,
    };
    let pinned = after_extras
        .strip_prefix("==")
        .filter(|v| !v.is_empty() && !v.contains([',', '*', '=']))
        .map(str::to_string);
    Ok(Some(Requirement {
        name: name.to_string(),
        pinned,
        spec: format!("{name}{after_extras}"),
        hashes,
        line: n,
    }))
}

/// Where one requirement comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The runtime bundles it at this version.
    Bundled(String),
    /// The host runs it natively.
    Host,
    /// The server provides it.
    Server,
    /// pip installs it.
    Install,
}

/// Where `r` comes from.
pub fn source(r: &Requirement, bundle: &Bundle) -> Source {
    let key = normalize(&r.name);
    if HOST.contains(&key.as_str()) {
        Source::Host
    } else if SERVER.contains(&key.as_str()) {
        Source::Server
    } else if let Some(v) = bundle.packages.get(&key) {
        Source::Bundled(v.clone())
    } else {
        Source::Install
    }
}

/// The key a resolved folder is cached under and stamped with.
fn key(text: &str, bundle: &Bundle) -> String {
    let mut h = Sha256::new();
    h.update(b"sandscore-requirements-1\0");
    h.update(text.as_bytes());
    for (name, version) in &bundle.packages {
        h.update(format!("\0{name} {version}").as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Whether `folder` was resolved from `text` (its stamp matches).
pub fn resolved_from(folder: &Path, text: &str, bundle: &Bundle) -> bool {
    std::fs::read_to_string(folder.join(STAMP)).is_ok_and(|s| s.trim() == key(text, bundle))
}

/// Resolves `requirements` (a `requirements.txt`) into a packages folder
/// under `cache`, reusing one resolved before. `None` when nothing needs
/// installing, or when one of `given` (folders the script already gets)
/// was resolved from the same file. Each line's source is said through
/// `say`.
pub fn resolve(
    requirements: &Path,
    bundle: &Bundle,
    given: &[PathBuf],
    cache: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Option<PathBuf>, SdkError> {
    let text = std::fs::read_to_string(requirements)
        .map_err(|e| SdkError::Python(format!("cannot read {}: {e}", requirements.display())))?;
    let wanted = parse(&text)?;
    let mut install = Vec::new();
    for r in &wanted {
        match source(r, bundle) {
            Source::Host => say(&format!(
                "requirements.txt: {} runs in the host's native library, not in the sandbox",
                r.name
            )),
            Source::Server => say(&format!(
                "requirements.txt: {} is not needed: sandscore is the server",
                r.name
            )),
            Source::Bundled(v) => match &r.pinned {
                Some(p) if p != &v => say(&format!(
                    "requirements.txt: {}=={p} asked for; the runtime bundles {v}, which the script gets",
                    r.name
                )),
                _ => say(&format!("requirements.txt: {} {v} is bundled", r.name)),
            },
            Source::Install if r.pinned.is_none() => {
                return Err(fail(
                    r.line,
                    format!(
                        "pin {} to a version (e.g. {}==1.2.3): installed packages are cached by this file's content, so an open range would never update",
                        r.spec, r.name
                    ),
                ));
            }
            Source::Install => install.push(r),
        }
    }
    if install.is_empty() {
        return Ok(None);
    }
    let hashed = install.iter().filter(|r| !r.hashes.is_empty()).count();
    if hashed > 0 && hashed < install.len() {
        let bare = install
            .iter()
            .find(|r| r.hashes.is_empty())
            .map_or("", |r| r.name.as_str());
        return Err(SdkError::Python(format!(
            "requirements.txt: some packages have --hash and {bare} has none; give every installed package its hashes, or none"
        )));
    }
    let stamp = key(&text, bundle);
    if given.iter().any(|g| resolved_from(g, &text, bundle)) {
        return Ok(None);
    }
    let folder = cache.join("python-packages").join(&stamp);
    if folder.join(STAMP).is_file() {
        say(&format!(
            "requirements.txt: packages from {}",
            folder.display()
        ));
        return Ok(Some(folder));
    }
    let names: Vec<String> = install.iter().map(|r| r.spec.clone()).collect();
    say(&format!(
        "requirements.txt: installing {} (pure-Python wheels)",
        names.join(", ")
    ));
    let stage = cache
        .join("python-packages")
        .join(format!("{stamp}.partial{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)
        .map_err(|e| SdkError::Python(format!("cannot create {}: {e}", stage.display())))?;
    let result = pip_install(&install, &stage, bundle).and_then(|()| {
        std::fs::write(stage.join(STAMP), format!("{stamp}\n"))
            .and_then(|()| std::fs::rename(&stage, &folder))
            .map_err(|e| SdkError::Python(format!("cannot write {}: {e}", folder.display())))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    result?;
    for line in missing_dependencies(&folder, bundle) {
        say(&line);
    }
    Ok(Some(folder))
}

/// The Python whose pip installs packages: `SANDSCORE_PIP_PYTHON`, else
/// `python3`.
fn pip_python() -> OsString {
    std::env::var_os("SANDSCORE_PIP_PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

fn pip_install(install: &[&Requirement], target: &Path, bundle: &Bundle) -> Result<(), SdkError> {
    let python = pip_python();
    let lines: String = install
        .iter()
        .map(|r| {
            let hashes: String = r.hashes.iter().map(|h| format!(" --hash={h}")).collect();
            format!("{}{hashes}\n", r.spec)
        })
        .collect();
    let list = target.join(".requirements.txt");
    std::fs::write(&list, lines).map_err(|e| SdkError::Python(e.to_string()))?;
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args([
            "--no-deps",
            "--no-compile",
            "--only-binary=:all:",
            "--platform",
            "any",
        ])
        .args([
            "--implementation",
            "py",
            "--python-version",
            "3.15",
            "--abi",
            "none",
        ])
        .arg("--target")
        .arg(target)
        .arg("-r")
        .arg(&list)
        .output();
    let _ = std::fs::remove_file(&list);
    let out = out.map_err(|e| {
        SdkError::Python(format!(
            "requirements.txt lists packages the runtime does not bundle, and installing them needs pip: cannot run {} ({e}); set SANDSCORE_PIP_PYTHON to a Python with pip, or install them into a folder and pass it as AZUREML_EXTRA_PYTHON_LIB_PATH",
            python.to_string_lossy()
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    if said.contains("No module named pip") {
        return Err(SdkError::Python(format!(
            "requirements.txt lists packages the runtime does not bundle, and {} has no pip; set SANDSCORE_PIP_PYTHON to a Python with pip",
            python.to_string_lossy()
        )));
    }
    let tail: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(6)..].join("\n");
    // pip names what it could not find: a package without a pure wheel.
    if let Some(missing) = said
        .split("No matching distribution found for ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
    {
        return Err(SdkError::Python(format!(
            "requirements.txt: {missing} has no pure-Python wheel (py3-none-any) on the package index, so it has native code (or does not exist): native code cannot run in the sandbox. The runtime bundles {} and ~60 more (README: Python scoring scripts); onnxruntime and xgboost run in the host.\npip said:\n{tail}",
            bundle.summary()
        )));
    }
    Err(SdkError::Python(format!(
        "pip could not install requirements.txt:\n{tail}"
    )))
}

/// A line per dependency an installed package declares that is neither
/// installed, bundled, nor provided by the host or the server.
fn missing_dependencies(folder: &Path, bundle: &Bundle) -> Vec<String> {
    let mut installed = BTreeSet::new();
    let mut needs = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "dist-info") {
            continue;
        }
        let Ok(meta) = std::fs::read_to_string(path.join("METADATA")) else {
            continue;
        };
        let mut name = String::new();
        for line in meta.lines().take_while(|l| !l.is_empty()) {
            if let Some(n) = line.strip_prefix("Name:") {
                name = n.trim().to_string();
                installed.insert(normalize(&name));
            } else if let Some(d) = line.strip_prefix("Requires-Dist:") {
                // Optional extras are never installed, and never needed.
                if d.contains("extra ==") || d.contains("extra==") {
                    continue;
                }
                let dep: String = d
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                    .collect();
                needs.push((name.clone(), dep));
            }
        }
    }
    needs
        .into_iter()
        .filter(|(_, dep)| {
            let k = normalize(dep);
            !installed.contains(&k)
                && !bundle.packages.contains_key(&k)
                && !HOST.contains(&k.as_str())
                && !SERVER.contains(&k.as_str())
        })
        .map(|(pkg, dep)| {
            format!("requirements.txt: {pkg} needs {dep}, which is neither bundled nor listed: add `{dep}==VERSION` if the script fails to import it")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_pip_reads_them() {
        let text = "# models\nnumpy==2.5.2  # bundled\nsortedcontainers==2.4.0 \\\n    --hash=sha256:ab\n\npandas>=2\nfoo[bar]==1.0 ; python_version>'3'\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].pinned.as_deref(), Some("2.5.2"));
        assert_eq!((r[1].name.as_str(), r[1].line), ("sortedcontainers", 3));
        assert_eq!(r[1].hashes, ["sha256:ab"]);
        assert_eq!(
            (r[2].pinned.as_deref(), r[2].spec.as_str()),
            (None, "pandas>=2")
        );
        assert_eq!(
            (r[3].spec.as_str(), r[3].pinned.as_deref()),
            ("foo==1.0", Some("1.0"))
        );
        for bad in [
            "-r other.txt",
            "--index-url http://x/",
            "-e .",
            "pkg @ https://x/p.whl",
            "https://x/p.whl",
            "./local",
            "pkg==1 --trusted-host x",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("line 1"), "{bad}: {e}");
        }
    }

    #[test]
    fn sources_follow_the_bundle() {
        let bundle =
            Bundle::parse("python 3.15.0\npackage numpy 2.5.2\npackage scikit-learn 1.9.1\n");
        let src = |l: &str| source(&parse(l).unwrap()[0], &bundle);
        assert_eq!(src("NumPy==1.0"), Source::Bundled("2.5.2".into()));
        assert_eq!(src("scikit_learn"), Source::Bundled("1.9.1".into()));
        assert_eq!(src("onnxruntime==1.20"), Source::Host);
        assert_eq!(src("azureml-defaults"), Source::Server);
        assert_eq!(src("sortedcontainers==2.4.0"), Source::Install);
        assert!(
            bundle
                .summary()
                .starts_with("numpy 2.5.2, scikit-learn 1.9.1")
        );
    }

    #[test]
    fn unpinned_and_half_hashed_installs_are_refused_before_pip() {
        let dir = tempfile::tempdir().unwrap();
        let req = dir.path().join("requirements.txt");
        let bundle = Bundle::default();
        let mut say = |_: &str| {};
        std::fs::write(&req, "humanize\n").unwrap();
        let e = resolve(&req, &bundle, &[], dir.path(), &mut say)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("pin humanize"), "{e}");
        std::fs::write(&req, "a==1 --hash=sha256:00\nb==2\n").unwrap();
        let e = resolve(&req, &bundle, &[], dir.path(), &mut say)
            .unwrap_err()
            .to_string();
        assert!(e.contains("b has none"), "{e}");
        // Only bundled and provided packages: nothing to install, no pip.
        let bundle = Bundle::parse("package numpy 2.5.2\n");
        std::fs::write(&req, "numpy==2.0\nazureml-defaults\nonnxruntime\n").unwrap();
        let mut said = Vec::new();
        let got = resolve(&req, &bundle, &[], dir.path(), &mut |l: &str| {
            said.push(l.to_string())
        });
        assert!(got.unwrap().is_none());
        assert!(said[0].contains("bundles 2.5.2"), "{said:?}");
    }
}
