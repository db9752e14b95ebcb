//! Every model format sandscore knows, in one table compiled into every
//! build whether or not its backend is: a backend's name, its V2 platform,
//! its wasi-nn encoding and how its files look are spelled here once, so
//! discovery, metadata and "which image reads this file" agree.

use std::path::Path;

use super::Encoding;

/// How the files of a format are told apart.
#[derive(Clone, Copy, Debug)]
pub enum Looks {
    /// By extension (any case).
    Extension(&'static [&'static str]),
    /// By file name (a folder format's marker file).
    FileName(&'static str),
    /// A `.json` or `.ubj` file that is an XGBoost booster.
    XgboostBooster,
}

/// One model format.
#[derive(Debug)]
pub struct Format {
    /// The backend that reads it, as flags, images and logs name it.
    pub backend: &'static str,
    /// The format as people call it.
    pub framework: &'static str,
    /// The platform V2 model metadata reports (Triton's names).
    pub platform: &'static str,
    /// Its wasi-nn graph encoding.
    pub encoding: Encoding,
    /// How its files look.
    pub looks: Looks,
}

const fn format(
    backend: &'static str,
    framework: &'static str,
    platform: &'static str,
    encoding: Encoding,
    looks: Looks,
) -> Format {
    Format {
        backend,
        framework,
        platform,
        encoding,
        looks,
    }
}

// One line a format, read as a table.
/// ONNX models, read by ONNX Runtime.
#[rustfmt::skip]
pub const ONNX: Format = format("onnxruntime", "ONNX", "onnxruntime_onnx", Encoding::Onnx, Looks::Extension(&["onnx"]));
/// XGBoost boosters (JSON, UBJSON), read by libxgboost.
#[rustfmt::skip]
pub const XGBOOST: Format = format("xgboost", "XGBoost", "xgboost", Encoding::Xgboost, Looks::XgboostBooster);
/// TensorFlow SavedModels, read through the TF C API.
#[rustfmt::skip]
pub const TENSORFLOW: Format = format("tensorflow", "TensorFlow", "tensorflow_savedmodel", Encoding::Tensorflow, Looks::FileName("saved_model.pb"));
/// TensorFlow Lite flatbuffers, read by LiteRT.
#[rustfmt::skip]
pub const TFLITE: Format = format("tflite", "TensorFlow Lite", "tensorflow_lite", Encoding::Tensorflowlite, Looks::Extension(&["tflite"]));
/// TorchScript archives, read by libtorch.
#[rustfmt::skip]
pub const PYTORCH: Format = format("pytorch", "PyTorch", "pytorch_libtorch", Encoding::Pytorch, Looks::Extension(&["pt", "pth", "torchscript"]));

/// Every format, in the order discovery tries them.
pub const ALL: [&Format; 5] = [&ONNX, &TENSORFLOW, &PYTORCH, &TFLITE, &XGBOOST];

impl Format {
    /// Whether `path` is a model file of this format.
    pub fn recognizes(&self, path: &Path) -> bool {
        let ext = || {
            path.extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        };
        match self.looks {
            Looks::Extension(list) => list.contains(&ext().as_str()),
            Looks::FileName(name) => path.file_name().is_some_and(|n| n == name),
            Looks::XgboostBooster => {
                matches!(ext().as_str(), "json" | "ubj") && looks_like_xgboost(&file_head(path))
            }
        }
    }
}

/// The format of a model file, whether or not this build reads it.
pub fn of_path(path: &Path) -> Option<&'static Format> {
    ALL.into_iter().find(|f| f.recognizes(path))
}

/// Whether bytes look like a saved XGBoost booster: JSON or UBJSON, both
/// objects whose first key is `learner`.
pub fn looks_like_xgboost(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    head.first() == Some(&b'{') && head.windows(7).any(|w| w == b"learner")
}

/// The first bytes of a file (empty when it cannot be read).
pub fn file_head(path: &Path) -> Vec<u8> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    head[..n].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_has_one_format() {
        assert_eq!(
            of_path(Path::new("m/model.ONNX")).map(|f| f.backend),
            Some("onnxruntime")
        );
        assert_eq!(
            of_path(Path::new("m/saved_model.pb")).map(|f| f.backend),
            Some("tensorflow")
        );
        assert_eq!(
            of_path(Path::new("net.pth")).map(|f| f.backend),
            Some("pytorch")
        );
        assert_eq!(
            of_path(Path::new("m.tflite")).map(|f| f.backend),
            Some("tflite")
        );
        assert!(of_path(Path::new("notes.txt")).is_none());
        assert!(
            of_path(Path::new("missing.json")).is_none(),
            "JSON that is no booster"
        );
    }
}
