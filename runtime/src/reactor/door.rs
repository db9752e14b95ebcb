//! The host door: the interpreter's only import beyond WASI,
//! `host::call(frame, len, &answer, &answer_len)`. Everything the script
//! reaches outside the sandbox comes through here, so every frame is
//! hostile input: bounded in size, parsed with serde, and answered with an
//! error frame (never a trap) when it is wrong.
//!
//! A frame is one op byte, a little-endian u32 JSON header length, the
//! header, then raw bytes. The answer is a status byte (0 ok, 1 refused),
//! the same length, a header (`message` when refused) and raw bytes; the
//! host writes it into memory the guest allocates (`host_alloc`), and the
//! guest frees it. The guest side is guest/python-reactor/sandscore_reactor.py.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};
use wasmtime::{Caller, Extern, Linker};

use super::State;
use crate::backend::{Backends, TensorInfo, fenced};
use crate::instance::GUEST_MODEL_DIR;
use crate::models::{ModelEntry, ModelRegistry};
use crate::tensor::{NamedTensor, Tensor};

const REQUEST: u8 = 1;
const RESPOND: u8 = 2;
const FAIL: u8 = 3;
const MODEL_OPEN: u8 = 4;
const MODEL_RUN: u8 = 5;
const INFO: u8 = 6;

/// Most models one interpreter may hold open.
const MAX_SESSIONS: usize = 64;
/// Longest failure message kept.
const MAX_MESSAGE: usize = 4096;

/// The request a turn scores.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The body as sent.
    pub body: Vec<u8>,
    /// Its content type.
    pub content_type: String,
    /// Headers with text values, lower-case names.
    pub headers: Vec<(String, String)>,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The raw query string, without `?`.
    pub query: String,
}

/// The script's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// HTTP status, 100–599.
    pub status: u16,
    /// The body's content type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// What the script reported instead of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Loading the script or its `init()` raised; the message names its line.
    Init(String),
    /// The request cannot be scored (invalid JSON, a body that is not text,
    /// `sandscore.BadRequest`).
    BadRequest(String),
    /// What the request names does not exist (`sandscore.NotFound`).
    NotFound(String),
    /// `run` raised; the message names the script's line.
    Internal(String),
}

/// The host's side of one interpreter's door.
pub struct Door {
    models: Arc<ModelRegistry>,
    backends: Backends,
    model_dir: Option<PathBuf>,
    max_response: usize,
    max_frame: usize,
    deadline: Option<Instant>,
    request: Option<Request>,
    answer: Option<Answer>,
    failure: Option<Failure>,
    sessions: Vec<Arc<ModelEntry>>,
    /// Sessions by the path or name they were opened with, so a script
    /// that opens its model per request resolves it once.
    opened: std::collections::HashMap<String, usize>,
}

/// An answer's header and its payload, in pieces copied once, into the
/// answer frame.
type Reply = Result<(Value, Vec<Vec<u8>>), String>;

impl Door {
    /// A door onto `models` (files of `model_dir`), answering at most
    /// `max_response` bytes to a request and copying at most `max_frame`
    /// bytes per call.
    pub fn new(
        models: Arc<ModelRegistry>,
        backends: Backends,
        model_dir: Option<PathBuf>,
        max_response: usize,
        max_frame: usize,
    ) -> Door {
        Door {
            models,
            backends,
            model_dir,
            max_response,
            max_frame,
            deadline: None,
            request: None,
            answer: None,
            failure: None,
            sessions: Vec::new(),
            opened: std::collections::HashMap::new(),
        }
    }

    /// Arms the door for one turn: its request (if any) and its deadline.
    pub fn arm(&mut self, request: Option<Request>, deadline: Option<Instant>) {
        self.request = request;
        self.deadline = deadline;
        self.answer = None;
        self.failure = None;
    }

    /// When the current turn must end.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What the turn left: an answer, or what went wrong.
    pub fn outcome(&mut self) -> (Option<Answer>, Option<Failure>) {
        self.request = None;
        (self.answer.take(), self.failure.take())
    }

    /// Answers one frame.
    pub fn handle(&mut self, frame: &[u8]) -> Vec<u8> {
        match self.dispatch(frame) {
            Ok((header, payload)) => answer_frame(0, &header, &payload),
            Err(message) => answer_frame(1, &json!({ "message": message }), &[]),
        }
    }

    fn dispatch(&mut self, frame: &[u8]) -> Reply {
        let (&op, rest) = frame.split_first().ok_or("an empty frame")?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or("a frame without a header length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(format!(
                "a header of {len} bytes in a frame of {}",
                frame.len()
            ));
        }
        let (header, payload) = rest.split_at(len);
        let parse = |what: &'static str| {
            move |e: serde_json::Error| {
                format!("{what}: the header is not what the host expects: {e}")
            }
        };
        match op {
            REQUEST => self.request(),
            RESPOND => self.respond(
                serde_json::from_slice(header).map_err(parse("respond"))?,
                payload,
            ),
            FAIL => self.fail(serde_json::from_slice(header).map_err(parse("fail"))?),
            MODEL_OPEN => self.open(serde_json::from_slice(header).map_err(parse("open"))?),
            MODEL_RUN => self.run(
                serde_json::from_slice(header).map_err(parse("run"))?,
                payload,
            ),
            INFO => Ok((self.info(), Vec::new())),
            other => Err(format!("unknown door op {other}")),
        }
    }

    fn request(&mut self) -> Reply {
        let r = self
            .request
            .as_ref()
            .ok_or("there is no request in this turn")?;
        let header = json!({
            "content_type": r.content_type,
            "headers": r.headers,
            "method": r.method,
            "query": r.query,
        });
        Ok((header, vec![r.body.clone()]))
    }

    fn respond(&mut self, h: RespondHeader, body: &[u8]) -> Reply {
        if !(100..=599).contains(&h.status) {
            return Err(format!("status {} is not an HTTP status", h.status));
        }
        if body.len() > self.max_response {
            return Err(format!(
                "a response body of {} bytes is over the {}-byte limit (--max-response)",
                body.len(),
                self.max_response
            ));
        }
        self.answer = Some(Answer {
            status: h.status,
            content_type: h.content_type,
            body: body.to_vec(),
        });
        Ok((json!({}), Vec::new()))
    }

    fn fail(&mut self, h: FailHeader) -> Reply {
        let message = crate::escape::capped(&h.message, MAX_MESSAGE).into_owned();
        self.failure = Some(match h.kind.as_str() {
            "init" => Failure::Init(message),
            "bad_request" => Failure::BadRequest(message),
            "not_found" => Failure::NotFound(message),
            _ => Failure::Internal(message),
        });
        Ok((json!({}), Vec::new()))
    }

    fn info(&self) -> Value {
        let versions: serde_json::Map<String, Value> = self
            .backends
            .iter()
            .map(|b| (b.name().to_string(), Value::String(b.version())))
            .collect();
        Value::Object(versions)
    }

    /// A model the server loaded, by its guest path (under `/models`).
    fn resolve(&self, guest: &str) -> Result<Arc<ModelEntry>, String> {
        let dir = self
            .model_dir
            .as_ref()
            .ok_or("there is no model directory (--model-dir, AZUREML_MODEL_DIR)")?;
        let shown = crate::escape::capped(guest, 200);
        let rel = Path::new(guest)
            .strip_prefix(GUEST_MODEL_DIR)
            .map_err(|_| format!("'{shown}' is not under AZUREML_MODEL_DIR ({GUEST_MODEL_DIR})"))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "'{shown}' must name a file of the model directory plainly"
            ));
        }
        // One answer for every path that is not a loaded model, so the
        // guest learns nothing of the host's files beyond its own view.
        let not_loaded = || {
            format!(
                "'{shown}' is not a model the server loaded; models load at start from the model directory (see GET /v2/models)"
            )
        };
        let root = std::fs::canonicalize(dir).map_err(|_| not_loaded())?;
        let want = std::fs::canonicalize(dir.join(rel))
            .ok()
            .filter(|p| p.starts_with(&root))
            .ok_or_else(not_loaded)?;
        self.models
            .iter()
            .into_iter()
            .find(|e| std::fs::canonicalize(&e.path).is_ok_and(|p| p == want))
            .ok_or_else(not_loaded)
    }

    fn open(&mut self, h: OpenHeader) -> Reply {
        let key = match (&h.path, &h.name) {
            (Some(path), _) => format!("path:{path}"),
            (None, Some(name)) => format!("name:{name}"),
            (None, None) => return Err("open needs a path or a name".into()),
        };
        let id = match self.opened.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.session_for(h)?;
                // Bounded: equivalent spellings of one path cannot grow it.
                if self.opened.len() < 4 * MAX_SESSIONS {
                    self.opened.insert(key, id);
                }
                id
            }
        };
        let entry = self.sessions.get(id).cloned().ok_or("no such session")?;
        let sig = entry.graph.signature();
        let describe = |infos: &[TensorInfo]| -> Vec<Value> {
            infos
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "datatype": match t.ty {
                            Some(ty) => ty.v2_name().to_string(),
                            None => t.native_type.clone(),
                        },
                        "native_type": t.native_type,
                        "shape": t.shape,
                    })
                })
                .collect()
        };
        let header = json!({
            "session": id,
            "inputs": describe(&sig.inputs),
            "outputs": describe(&sig.outputs),
        });
        Ok((header, Vec::new()))
    }

    /// The session of the model `h` names: an existing one when that model
    /// is already open (the count bounds distinct models, not calls).
    fn session_for(&mut self, h: OpenHeader) -> Result<usize, String> {
        let entry = match (h.path, h.name) {
            (Some(path), _) => self.resolve(&path)?,
            (None, Some(name)) => self.models.get(&name).ok_or_else(|| {
                format!(
                    "no model named '{}' in the model directory; it has {:?}",
                    crate::escape::capped(&name, 64),
                    self.models.names()
                )
            })?,
            (None, None) => return Err("open needs a path or a name".into()),
        };
        match self.sessions.iter().position(|e| Arc::ptr_eq(e, &entry)) {
            Some(id) => Ok(id),
            None if self.sessions.len() >= MAX_SESSIONS => {
                Err(format!("at most {MAX_SESSIONS} models may be open at once"))
            }
            None => {
                self.sessions.push(entry);
                Ok(self.sessions.len() - 1)
            }
        }
    }

    fn run(&mut self, h: RunHeader, mut payload: &[u8]) -> Reply {
        let entry = self
            .sessions
            .get(h.session)
            .cloned()
            .ok_or("no such session")?;
        let mut inputs = Vec::with_capacity(h.inputs.len());
        for i in h.inputs {
            let (ty, shape, _) = crate::codec::v2::input_layout(&i.name, &i.datatype, &i.shape)
                .map_err(|e| e.to_string())?;
            if i.size > payload.len() {
                return Err(format!(
                    "input '{}' has {} bytes, fewer than it says",
                    i.name,
                    payload.len()
                ));
            }
            let (data, rest) = payload.split_at(i.size);
            payload = rest;
            let tensor = Tensor::new(shape, ty, data.to_vec())
                .map_err(|e| format!("input '{}': {e}", i.name))?;
            inputs.push(NamedTensor {
                name: i.name,
                tensor,
            });
        }
        let graph = Arc::clone(&entry.graph);
        let deadline = self.deadline;
        let mut outputs = fenced(|| graph.compute(inputs, deadline)).map_err(|e| e.to_string())?;
        if let Some(names) = h.outputs {
            let mut chosen = Vec::with_capacity(names.len());
            for name in names {
                let at = outputs.iter().position(|o| o.name == name).ok_or_else(|| {
                    format!(
                        "the model has no output '{}'",
                        crate::escape::capped(&name, 64)
                    )
                })?;
                chosen.push(outputs.swap_remove(at));
            }
            outputs = chosen;
        }
        let total: usize = outputs.iter().map(|o| o.tensor.data.len()).sum();
        if total > self.max_frame {
            return Err(format!(
                "outputs of {total} bytes are over the {}-byte limit",
                self.max_frame
            ));
        }
        let meta: Vec<Value> = outputs
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "datatype": o.tensor.ty.v2_name(),
                    "shape": o.tensor.shape,
                    "size": o.tensor.data.len(),
                })
            })
            .collect();
        let data = outputs.into_iter().map(|o| o.tensor.data).collect();
        Ok((json!({ "outputs": meta }), data))
    }
}

/// An answer: status byte, header length, header, payload.
fn answer_frame(status: u8, header: &Value, payload: &[Vec<u8>]) -> Vec<u8> {
    let header = header.to_string().into_bytes();
    let size: usize = payload.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(5 + header.len() + size);
    out.push(status);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for piece in payload {
        out.extend_from_slice(piece);
    }
    out
}

#[derive(Deserialize)]
struct RespondHeader {
    status: u16,
    content_type: String,
}

#[derive(Deserialize)]
struct FailHeader {
    kind: String,
    message: String,
}

#[derive(Deserialize)]
struct OpenHeader {
    path: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RunInput {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    size: usize,
}

#[derive(Deserialize)]
struct RunHeader {
    session: usize,
    inputs: Vec<RunInput>,
    outputs: Option<Vec<String>>,
}

/// Binds `host::call` to each store's [`Door`].
pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "host",
        "call",
        |mut caller: Caller<'_, State>, ptr: i32, len: i32, out_ptr: i32, out_len: i32| {
            call(
                &mut caller,
                ptr as u32,
                len as u32,
                out_ptr as u32,
                out_len as u32,
            )
        },
    )?;
    Ok(())
}

/// One door call: -2 (the guest raises `OSError`) for a frame the host
/// cannot even read; otherwise 0 and an answer frame.
fn call(
    caller: &mut Caller<'_, State>,
    ptr: u32,
    len: u32,
    out_ptr: u32,
    out_len: u32,
) -> wasmtime::Result<i32> {
    const FAULT: i32 = -2;
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(FAULT);
    };
    let len = len as usize;
    let max = caller.data().door.max_frame;
    let answer = if len > max {
        let message = format!("a door frame of {len} bytes is over the {max}-byte limit");
        answer_frame(1, &json!({ "message": message }), &[])
    } else {
        // Read in place: the guest does not run while the host answers.
        let (data, state) = memory.data_and_store_mut(&mut *caller);
        let Some(frame) = (ptr as usize)
            .checked_add(len)
            .and_then(|end| data.get(ptr as usize..end))
        else {
            return Ok(FAULT);
        };
        state.door.handle(frame)
    };
    let Some(alloc) = caller
        .get_export("host_alloc")
        .and_then(Extern::into_func)
        .and_then(|f| f.typed::<i32, i32>(&*caller).ok())
    else {
        return Ok(FAULT);
    };
    let Ok(size) = i32::try_from(answer.len()) else {
        return Ok(FAULT);
    };
    // Re-enters the guest; a trap there (its deadline) ends the turn.
    let at = alloc.call(&mut *caller, size)? as u32;
    let written = at != 0
        && super::write_all(
            &memory,
            &mut *caller,
            &[
                (at, &answer),
                (out_ptr, &at.to_le_bytes()),
                (out_len, &(answer.len() as u32).to_le_bytes()),
            ],
        );
    Ok(if written { 0 } else { FAULT })
}
