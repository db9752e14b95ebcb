//! The worker process's side: load graphs from the bytes the host sends,
//! run them, answer. It trusts the host, not the bytes: every backend call
//! is fenced, model bytes still go through the backends' own checks, and
//! outputs past the host's limit are refused here before they are sent.
//!
//! Its standard output is moved to a private descriptor for the protocol,
//! and native libraries that print to stdout print to stderr instead, which
//! the host logs escaped. It runs in an empty working directory of its own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::os::fd::FromRawFd;
use std::sync::Arc;

use super::frame::{self, Budget, Info, Reply, Request, TensorHead};
use crate::backend::{BackendError, Backends, Graph, Target, fenced};
use crate::tensor::{NamedTensor, Tensor};

/// Most bytes of model parts or inputs the worker reads in one request.
const MAX_REQUEST_BYTES: usize = 2 << 30;

/// Serves the host on stdin and stdout until stdin closes.
pub fn serve(backends: Backends) -> io::Result<()> {
    // SAFETY: dup of the process's own stdout; then stdout points at stderr,
    // and the duplicate is owned by `out` alone.
    let out = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(io::Error::last_os_error());
        }
        File::from_raw_fd(fd)
    };
    // The server may die without closing our stdin in time (killed while we
    // compute): once we are re-parented, we go too. (`PR_SET_PDEATHSIG`
    // would follow the thread that spawned us, which may end before the
    // server does.)
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    std::thread::Builder::new()
        .name("nn-worker-parent".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                // SAFETY: as above.
                if unsafe { libc::getppid() } != parent {
                    std::process::exit(1);
                }
            }
        })?;
    let home = tempfile::Builder::new()
        .prefix("sandscore-nn-worker-")
        .tempdir()?;
    std::env::set_current_dir(home.path())?;
    let mut out = BufWriter::new(out);
    let mut input = BufReader::new(io::stdin().lock());
    frame::write(&mut out, &Reply::Ready, &[])?;
    let mut graphs: HashMap<u64, Arc<dyn Graph>> = HashMap::new();
    let mut next = 0u64;
    loop {
        let (request, blobs) = match frame::read::<Request>(
            &mut input,
            Budget {
                bytes: MAX_REQUEST_BYTES,
            },
        ) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        match request {
            Request::Load { backend, gpu } => {
                let reply = match load(&backends, &backend, gpu, &blobs) {
                    Ok(g) => {
                        next += 1;
                        let reply = Reply::Loaded {
                            id: next,
                            inputs: g.inputs().iter().map(Info::from).collect(),
                            outputs: g.outputs().iter().map(Info::from).collect(),
                            device: g.device(),
                        };
                        graphs.insert(next, g);
                        reply
                    }
                    Err(e) => Reply::failed(&e),
                };
                frame::write(&mut out, &reply, &[])?;
            }
            Request::Compute {
                id,
                inputs,
                max_bytes,
            } => match compute(&graphs, id, inputs, blobs, max_bytes) {
                Ok(outputs) => {
                    let (heads, data) = TensorHead::split(&outputs);
                    frame::write(&mut out, &Reply::Outputs { outputs: heads }, &data)?;
                }
                Err(e) => frame::write(&mut out, &Reply::failed(&e), &[])?,
            },
            Request::Drop { id } => {
                graphs.remove(&id);
                frame::write(&mut out, &Reply::Done, &[])?;
            }
        }
    }
}

fn load(
    backends: &Backends,
    name: &str,
    gpu: bool,
    blobs: &[Vec<u8>],
) -> Result<Arc<dyn Graph>, BackendError> {
    let backend = backends
        .iter()
        .find(|b| b.name() == name)
        .ok_or_else(|| BackendError::Unavailable(format!("no backend '{name}' in the worker")))?;
    let parts: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let target = if gpu { Target::Gpu } else { Target::Cpu };
    fenced(|| backend.load(&parts, target))
}

fn compute(
    graphs: &HashMap<u64, Arc<dyn Graph>>,
    id: u64,
    heads: Vec<TensorHead>,
    blobs: Vec<Vec<u8>>,
    max_bytes: u64,
) -> Result<Vec<NamedTensor>, BackendError> {
    let graph = graphs
        .get(&id)
        .ok_or_else(|| BackendError::Runtime(format!("no graph {id} in the worker")))?;
    if heads.len() != blobs.len() {
        return Err(BackendError::InvalidInput(
            "inputs and data differ in count".into(),
        ));
    }
    let inputs = heads
        .into_iter()
        .zip(blobs)
        .map(|(h, data)| {
            let tensor = Tensor::new(h.shape, h.ty, data)
                .map_err(|e| BackendError::InvalidInput(format!("input '{}': {e}", h.name)))?;
            Ok(NamedTensor {
                name: h.name,
                tensor,
            })
        })
        .collect::<Result<Vec<_>, BackendError>>()?;
    let graph = Arc::clone(graph);
    let outputs = fenced(|| graph.compute(inputs, None))?;
    let total: u64 = outputs.iter().map(|o| o.tensor.data.len() as u64).sum();
    if total > max_bytes {
        return Err(BackendError::TooLarge(format!(
            "the model's outputs are {total} bytes, over the {max_bytes}-byte limit of one instance"
        )));
    }
    Ok(outputs)
}
