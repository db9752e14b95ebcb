//! What `sandscore check --format json` reports, as far as the SDK reads
//! it (`spec/check-report.schema.json` describes the whole document). The
//! SDK reads this document, never the human text, so rewording `check`'s
//! lines breaks nothing here.

use serde::Deserialize;

/// The report of one `sandscore check`.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckReport {
    /// The module, when the deployment has one.
    pub module: Option<CheckedModule>,
    /// Every model that loaded.
    pub models: Vec<CheckedModel>,
}

/// The module that was linked and initialised.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckedModule {
    /// Its name (file stem).
    pub name: String,
    /// Whether it was built from a Python script.
    pub python: bool,
}

/// A model that loaded.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckedModel {
    /// Its name.
    pub name: String,
    /// The backend that runs it (`onnxruntime`, `xgboost`, …).
    pub backend: String,
    /// Where it runs (`cpu`, `cuda:0`, …).
    pub device: String,
}

impl CheckReport {
    /// Reads `check --format json`'s output.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(json)
            .map_err(|e| format!("`sandscore check --format json` printed no report ({e})"))
    }
}
