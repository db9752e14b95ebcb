//! The worker protocol's frames: a JSON header and the byte blobs it refers
//! to (model parts, tensor data), each length-prefixed, so no byte of a
//! tensor is ever parsed as text.
//!
//! `u32 header length · header JSON · u32 blob count · (u64 length · bytes)*`,
//! little-endian. A reader is given a [`Budget`] and refuses a frame that
//! would pass it before allocating for it: the host does not trust what a
//! worker that ran hostile bytes sends back.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::backend::{BackendError, TensorInfo};
use crate::tensor::{NamedTensor, TensorType};

/// Longest header accepted.
const MAX_HEADER: usize = 4 << 20;
/// Most blobs in one frame.
const MAX_BLOBS: usize = 4096;

/// What a reader will accept in one frame.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Total bytes of all blobs.
    pub bytes: usize,
}

/// Requests from the host to the worker.
#[derive(Serialize, Deserialize, Debug)]
pub enum Request {
    /// Load a graph from the blobs with this backend.
    Load { backend: String, gpu: bool },
    /// Run graph `id` on the named tensors; blob `i` is tensor `i`'s data.
    Compute {
        id: u64,
        inputs: Vec<TensorHead>,
        /// Largest outputs (all together) to send back; larger fail.
        max_bytes: u64,
    },
    /// Forget graph `id`.
    Drop { id: u64 },
}

/// Replies from the worker.
#[derive(Serialize, Deserialize, Debug)]
pub enum Reply {
    /// The worker's backends are ready.
    Ready,
    /// A graph was loaded.
    Loaded {
        id: u64,
        inputs: Vec<Info>,
        outputs: Vec<Info>,
        device: String,
    },
    /// Outputs; blob `i` is tensor `i`'s data.
    Outputs { outputs: Vec<TensorHead> },
    /// Done (after `Drop`).
    Done,
    /// The backend refused or failed.
    Failed { kind: FailKind, message: String },
}

/// A tensor without its data.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct TensorHead {
    pub name: String,
    pub shape: Vec<u32>,
    pub ty: TensorType,
}

impl TensorHead {
    /// The heads of `tensors` and their data, blob `i` for head `i`.
    pub fn split(tensors: &[NamedTensor]) -> (Vec<TensorHead>, Vec<&[u8]>) {
        tensors
            .iter()
            .map(|n| {
                let head = TensorHead {
                    name: n.name.clone(),
                    shape: n.tensor.shape.clone(),
                    ty: n.tensor.ty,
                };
                (head, n.tensor.data.as_slice())
            })
            .unzip()
    }
}

/// [`TensorInfo`] on the wire.
#[derive(Serialize, Deserialize, Debug)]
pub struct Info {
    pub name: String,
    pub ty: Option<TensorType>,
    pub shape: Vec<i64>,
    pub native_type: String,
}

impl From<&TensorInfo> for Info {
    fn from(t: &TensorInfo) -> Self {
        Info {
            name: t.name.clone(),
            ty: t.ty,
            shape: t.shape.clone(),
            native_type: t.native_type.clone(),
        }
    }
}

impl From<Info> for TensorInfo {
    fn from(t: Info) -> Self {
        TensorInfo {
            name: t.name,
            ty: t.ty,
            shape: t.shape,
            native_type: t.native_type,
        }
    }
}

/// [`BackendError`]'s kinds on the wire.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub enum FailKind {
    Unavailable,
    InvalidModel,
    InvalidInput,
    Unsupported,
    Runtime,
    TooLarge,
}

impl Reply {
    /// A failure reply carrying `e`.
    pub fn failed(e: &BackendError) -> Reply {
        let (kind, message) = match e {
            BackendError::Unavailable(m) => (FailKind::Unavailable, m),
            BackendError::InvalidModel(m) => (FailKind::InvalidModel, m),
            BackendError::InvalidInput(m) => (FailKind::InvalidInput, m),
            BackendError::Unsupported(m) => (FailKind::Unsupported, m),
            BackendError::Runtime(m) => (FailKind::Runtime, m),
            BackendError::TooLarge(m) => (FailKind::TooLarge, m),
            other => {
                return Reply::Failed {
                    kind: FailKind::Runtime,
                    message: other.to_string(),
                };
            }
        };
        Reply::Failed {
            kind,
            message: message.clone(),
        }
    }
}

impl FailKind {
    /// The error this failure stands for.
    pub fn error(self, message: String) -> BackendError {
        match self {
            FailKind::Unavailable => BackendError::Unavailable(message),
            FailKind::InvalidModel => BackendError::InvalidModel(message),
            FailKind::InvalidInput => BackendError::InvalidInput(message),
            FailKind::Unsupported => BackendError::Unsupported(message),
            FailKind::Runtime => BackendError::Runtime(message),
            FailKind::TooLarge => BackendError::TooLarge(message),
        }
    }
}

/// Writes one frame.
pub fn write<T: Serialize>(w: &mut impl Write, header: &T, blobs: &[&[u8]]) -> io::Result<()> {
    let head = serde_json::to_vec(header).map_err(io::Error::other)?;
    w.write_all(&(head.len() as u32).to_le_bytes())?;
    w.write_all(&head)?;
    w.write_all(&(blobs.len() as u32).to_le_bytes())?;
    for b in blobs {
        w.write_all(&(b.len() as u64).to_le_bytes())?;
        w.write_all(b)?;
    }
    w.flush()
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} over its limit"))
}

/// Reads one frame, within `budget`.
pub fn read<T: DeserializeOwned>(
    r: &mut impl Read,
    budget: Budget,
) -> io::Result<(T, Vec<Vec<u8>>)> {
    let mut word = [0u8; 4];
    r.read_exact(&mut word)?;
    let n = u32::from_le_bytes(word) as usize;
    if n > MAX_HEADER {
        return Err(too_big("a frame header"));
    }
    let mut head = vec![0u8; n];
    r.read_exact(&mut head)?;
    let header =
        serde_json::from_slice(&head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    r.read_exact(&mut word)?;
    let count = u32::from_le_bytes(word) as usize;
    if count > MAX_BLOBS {
        return Err(too_big("a frame's blob count"));
    }
    let mut left = budget.bytes;
    let mut blobs = Vec::with_capacity(count);
    for _ in 0..count {
        let mut len = [0u8; 8];
        r.read_exact(&mut len)?;
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| too_big("a blob"))?;
        left = left
            .checked_sub(len)
            .ok_or_else(|| too_big("a frame's data"))?;
        let mut blob = vec![0u8; len];
        r.read_exact(&mut blob)?;
        blobs.push(blob);
    }
    Ok((header, blobs))
}
