//! ONNX external data: every tensor in a model — graph initializers, sparse
//! initializers, node attributes (`Constant`'s `value`), subgraphs (`If`,
//! `Loop`, `Scan` bodies), model-local functions and training graphs — may
//! say that its bytes live in a file (`data_location = EXTERNAL`, with a
//! `location` relative to the model). ONNX Runtime opens that file. For a
//! model loaded from memory the location is resolved against the server's
//! working directory, so a guest could read any host file the server can
//! (`etc/passwd`, `../../..` chains) and get its bytes back as an output.
//!
//! [`check`] walks the protobuf wire format itself, descending only into
//! the messages that can hold tensors, and calls the policy on every
//! external reference it finds: refused outright for a guest's bytes, kept
//! inside the model's own folder for a model directory. The walk allocates
//! nothing per element, is linear in the input, and stops at
//! [`MAX_DEPTH`] levels of nesting.

use std::path::{Component, Path, PathBuf};

/// Deepest nesting of messages walked (a model inside a graph inside an
/// attribute inside a node…); real models stay far below it.
pub const MAX_DEPTH: usize = 64;

/// Why an ONNX model was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OnnxError {
    /// The bytes are not a well-formed protobuf message.
    #[error("not a valid ONNX model: {0}")]
    Malformed(&'static str),
    /// Subgraphs nest deeper than [`MAX_DEPTH`].
    #[error("the model nests more than {MAX_DEPTH} levels of graphs and attributes")]
    TooDeep,
    /// A tensor names external data, which models loaded from bytes may not.
    #[error(
        "the model's tensor '{tensor}' keeps its data in an external file; a model loaded from bytes must carry all its data inline (save it with onnx.save_model(..., save_as_external_data=False)), or put it in the model directory and open it by name"
    )]
    ExternalData {
        /// The tensor's name (cut to 64 characters).
        tensor: String,
    },
    /// External data that would be read from outside the model's folder.
    #[error(
        "the model's tensor '{tensor}' keeps its data at '{location}', outside the model's folder; external data must be a relative path inside it"
    )]
    OutsideFolder {
        /// The tensor's name (cut to 64 characters).
        tensor: String,
        /// The location as the model gives it (cut to 128 characters).
        location: String,
    },
}

/// Where external data may come from.
#[derive(Clone, Copy, Debug)]
pub enum Policy<'a> {
    /// Nowhere: the bytes came from a guest (or anywhere without a folder).
    Inline,
    /// Files inside this folder (the model's own), after resolving symlinks.
    Within(&'a Path),
}

/// What the walk found in a model that passed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Tensors whose data lives in files (all inside the folder).
    pub external_tensors: usize,
}

/// Checks `bytes` (an ONNX `ModelProto`) against `policy`.
pub fn check(bytes: &[u8], policy: Policy<'_>) -> Result<Facts, OnnxError> {
    let mut walk = Walk {
        policy,
        facts: Facts::default(),
    };
    walk.message(bytes, Kind::Model, 0)?;
    Ok(walk.facts)
}

/// The messages that can hold tensors, and the fields that lead to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Model,
    TrainingInfo,
    Graph,
    Node,
    Function,
    Attribute,
    SparseTensor,
    Tensor,
}

impl Kind {
    /// The kind of the sub-message in field `field`, if it is one to walk.
    fn child(self, field: u64) -> Option<Kind> {
        use Kind::*;
        Some(match (self, field) {
            (Model, 7) => Graph,
            (Model, 20) => TrainingInfo,
            (Model, 25) => Function,
            (TrainingInfo, 1 | 2) => Graph,
            (Graph, 1) => Node,
            (Graph, 5) => Tensor,
            (Graph, 15) => SparseTensor,
            (Node, 5) => Attribute,
            (Function, 7) => Node,
            (Function, 11) => Attribute,
            (Attribute, 5 | 10) => Tensor,
            (Attribute, 6 | 11) => Graph,
            (Attribute, 22 | 23) => SparseTensor,
            (SparseTensor, 1 | 2) => Tensor,
            _ => return None,
        })
    }
}

/// One field of a message on the wire.
enum Value<'b> {
    Varint(u64),
    Bytes(&'b [u8]),
    Fixed,
}

/// A protobuf wire-format reader over one message's bytes.
struct Reader<'b> {
    rest: &'b [u8],
}

impl<'b> Reader<'b> {
    fn varint(&mut self) -> Result<u64, OnnxError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .rest
                .split_first()
                .ok_or(OnnxError::Malformed("a number runs past the end"))?;
            self.rest = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(OnnxError::Malformed("a number is longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'b [u8], OnnxError> {
        let n = usize::try_from(n).map_err(|_| OnnxError::Malformed("a length is too large"))?;
        if n > self.rest.len() {
            return Err(OnnxError::Malformed("a field runs past the end"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// The next field number and value, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'b>)>, OnnxError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(OnnxError::Malformed("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(OnnxError::Malformed("an unsupported wire type (groups)")),
        };
        Ok(Some((field, value)))
    }
}

struct Walk<'p> {
    policy: Policy<'p>,
    facts: Facts,
}

/// `s` cut to `n` characters, for messages.
fn cut(s: &[u8], n: usize) -> String {
    String::from_utf8_lossy(s).chars().take(n).collect()
}

impl Walk<'_> {
    fn message(&mut self, bytes: &[u8], kind: Kind, depth: usize) -> Result<(), OnnxError> {
        if depth >= MAX_DEPTH {
            return Err(OnnxError::TooDeep);
        }
        let mut r = Reader { rest: bytes };
        // A tensor's facts, gathered over its fields (in any order).
        let mut name: &[u8] = b"";
        let mut external = false;
        let mut locations = 0usize;
        let mut location: Option<&[u8]> = None;
        while let Some((field, value)) = r.field()? {
            match (kind, field, value) {
                (Kind::Tensor, 8, Value::Bytes(b)) => name = b,
                (Kind::Tensor, 14, Value::Varint(v)) => external |= v == 1,
                (Kind::Tensor, 13, Value::Bytes(entry)) => {
                    external = true;
                    if let Some(l) = entry_location(entry)? {
                        locations += 1;
                        location = Some(l);
                    }
                }
                (_, _, Value::Bytes(b)) => {
                    if let Some(child) = kind.child(field) {
                        self.message(b, child, depth + 1)?;
                    }
                }
                _ => {}
            }
        }
        if kind == Kind::Tensor && external {
            self.external(name, location, locations)?;
        }
        Ok(())
    }

    fn external(
        &mut self,
        name: &[u8],
        location: Option<&[u8]>,
        locations: usize,
    ) -> Result<(), OnnxError> {
        let tensor = cut(name, 64);
        let Policy::Within(folder) = self.policy else {
            return Err(OnnxError::ExternalData { tensor });
        };
        let outside = |l: &[u8]| OnnxError::OutsideFolder {
            tensor: tensor.clone(),
            location: cut(l, 128),
        };
        let Some(location) = location else {
            return Err(outside(b""));
        };
        // Two `location` entries could be read either way; refuse the doubt.
        if locations != 1 || !inside(folder, location) {
            return Err(outside(location));
        }
        self.facts.external_tensors += 1;
        Ok(())
    }
}

/// The `location` value of an external-data `StringStringEntryProto`.
fn entry_location(entry: &[u8]) -> Result<Option<&[u8]>, OnnxError> {
    let mut r = Reader { rest: entry };
    let (mut key, mut value): (&[u8], &[u8]) = (b"", b"");
    while let Some((field, v)) = r.field()? {
        match (field, v) {
            (1, Value::Bytes(b)) => key = b,
            (2, Value::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Ok((key == b"location").then_some(value))
}

/// Whether `location` names an existing file inside `folder`: relative, no
/// `..`, no NUL, and still inside once symlinks are resolved.
fn inside(folder: &Path, location: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(location) else {
        return false;
    };
    let relative = Path::new(text);
    if text.is_empty()
        || text.contains('\0')
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return false;
    }
    let resolve = |p: &Path| std::fs::canonicalize(p).ok();
    match (resolve(folder), resolve(&folder.join(relative))) {
        (Some(base), Some(file)) => file.starts_with(&base) && file.is_file(),
        _ => false,
    }
}

/// The folder a model file's external data is resolved against.
pub fn folder_of(model: &Path) -> PathBuf {
    model
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protobuf encoding helpers for hand-built models.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes(field: u64, b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | 2, &mut out);
        varint(b.len() as u64, &mut out);
        out.extend_from_slice(b);
        out
    }
    fn number(field: u64, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3, &mut out);
        varint(v, &mut out);
        out
    }
    fn entry(k: &str, v: &str) -> Vec<u8> {
        [bytes(1, k.as_bytes()), bytes(2, v.as_bytes())].concat()
    }
    /// A TensorProto named `w` with its data at `location`.
    fn external_tensor(location: &str) -> Vec<u8> {
        [
            number(1, 16),
            number(2, 2),
            bytes(8, b"w"),
            bytes(13, &entry("location", location)),
            bytes(13, &entry("length", "16")),
            number(14, 1),
        ]
        .concat()
    }
    fn model_with_graph(graph: Vec<u8>) -> Vec<u8> {
        [number(1, 8), bytes(7, &graph)].concat()
    }

    #[test]
    fn inline_models_pass_and_external_data_is_refused_wherever_it_hides() {
        let inline = [bytes(8, b"w"), bytes(9, &[0; 16])].concat();
        assert_eq!(
            check(&model_with_graph(bytes(5, &inline)), Policy::Inline),
            Ok(Facts::default())
        );
        let ext = external_tensor("etc/passwd");
        let attribute = |field| bytes(1, &bytes(5, &bytes(field, &ext)));
        let hiding_places = [
            ("initializer", model_with_graph(bytes(5, &ext))),
            (
                "sparse initializer",
                model_with_graph(bytes(15, &bytes(1, &ext))),
            ),
            ("Constant's value", model_with_graph(attribute(5))),
            ("attribute tensors", model_with_graph(attribute(10))),
            (
                "If branch",
                model_with_graph(bytes(1, &bytes(5, &bytes(6, &bytes(5, &ext))))),
            ),
            (
                "function",
                [
                    number(1, 8),
                    bytes(25, &bytes(7, &bytes(5, &bytes(5, &ext)))),
                ]
                .concat(),
            ),
            (
                "training graph",
                [number(1, 8), bytes(20, &bytes(2, &bytes(5, &ext)))].concat(),
            ),
        ];
        for (place, model) in hiding_places {
            assert_eq!(
                check(&model, Policy::Inline),
                Err(OnnxError::ExternalData { tensor: "w".into() }),
                "{place}"
            );
        }
        // data_location = EXTERNAL without a location, and a location
        // without data_location, are both refused.
        let bare = [bytes(8, b"w"), number(14, 1)].concat();
        assert!(check(&model_with_graph(bytes(5, &bare)), Policy::Inline).is_err());
        let unflagged = [bytes(8, b"w"), bytes(13, &entry("location", "x"))].concat();
        assert!(check(&model_with_graph(bytes(5, &unflagged)), Policy::Inline).is_err());
    }

    #[test]
    fn a_model_directory_keeps_external_data_inside_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("weights.bin"), [0u8; 16]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/w.bin"), [0u8; 16]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let within = Policy::Within(dir.path());
        for ok in ["weights.bin", "./sub/w.bin"] {
            let model = model_with_graph(bytes(5, &external_tensor(ok)));
            assert_eq!(
                check(&model, within),
                Ok(Facts {
                    external_tensors: 1
                }),
                "{ok}"
            );
        }
        for bad in [
            "/etc/passwd",
            "../../../../etc/passwd",
            "sub/../../x",
            "link",
            "missing.bin",
            "sub",
            "",
        ] {
            let model = model_with_graph(bytes(5, &external_tensor(bad)));
            assert!(
                matches!(check(&model, within), Err(OnnxError::OutsideFolder { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_and_deep_inputs_are_refused_quickly() {
        assert!(check(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], Policy::Inline).is_err());
        assert!(check(&[0xff; 11], Policy::Inline).is_err());
        assert!(check(&[0x0b], Policy::Inline).is_err());
        // Graph → node → attribute → graph → … deeper than MAX_DEPTH.
        let mut g = Vec::new();
        for _ in 0..MAX_DEPTH {
            g = bytes(1, &bytes(5, &bytes(6, &g)));
        }
        assert_eq!(
            check(&model_with_graph(g), Policy::Inline),
            Err(OnnxError::TooDeep)
        );
    }
}
