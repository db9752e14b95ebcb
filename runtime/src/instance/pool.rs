//! Warm instances shared by concurrent requests.
//!
//! [`Admission`] bounds how many requests are inside guests at once (one per
//! worker) and how many may wait; each running request holds one instance
//! on a blocking thread (guest code and native inference are CPU work, not
//! async work). An instance that trapped, ran out of time or overfilled its
//! scratch space is dropped, never reused; a replacement is made in the
//! background (or by the next request, if that comes first). In isolated
//! mode every request gets a fresh instance and it is dropped afterwards.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::Trap;

use super::output::GuestOutput;
use super::{Factory, InstanceError, Isolation, Worker, ticks};
use crate::admission::{Admission, Overloaded};
use crate::metrics::metrics;
use crate::tensor::{NamedTensor, Tensor};
use crate::wit::{GuestError, WitRequest, WitResponse, WitTensor};

/// Why a call into the module produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The module returned a typed error.
    #[error("{}", .0.message)]
    Guest(GuestError),
    /// The module trapped (panic, unreachable, out of bounds, out of memory…).
    #[error("the scoring module trapped: {0}")]
    Trap(String),
    /// The request ran past the scoring timeout.
    #[error("scoring took longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// Too many requests are running and waiting.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// A fresh instance could not be made.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The request holds what a module cannot receive (a tensor type
    /// wasi-nn does not carry).
    #[error("{0}")]
    Unsupported(String),
    /// The module returned something malformed or too large.
    #[error("the scoring module returned an invalid result: {0}")]
    Invalid(String),
    /// A worker thread died.
    #[error("internal error: {0}")]
    Host(String),
}

/// The instance pool.
pub struct Pool {
    factory: Arc<Factory>,
    idle: Arc<Mutex<Vec<Worker>>>,
    admission: Admission,
}

/// Returns a worker to the idle list, unless the list is already full.
fn put_idle(idle: &Mutex<Vec<Worker>>, worker: Worker, size: usize) {
    if let Ok(mut idle) = idle.lock() {
        if idle.len() < size {
            idle.push(worker);
        }
        metrics().instances_idle.set(idle.len() as i64);
    }
}

impl Pool {
    /// Makes and initialises the instances (one in isolated mode, to prove
    /// `init` works before the server says it is ready).
    pub fn start(factory: Arc<Factory>) -> Result<Self, InstanceError> {
        let n = factory.config.workers.max(1);
        let warm = match factory.config.isolation {
            Isolation::Pooled => n,
            Isolation::Isolated => {
                drop(factory.instantiate()?);
                0
            }
        };
        let workers = (0..warm)
            .map(|_| factory.instantiate())
            .collect::<Result<Vec<_>, _>>()?;
        metrics().instances_idle.set(workers.len() as i64);
        Ok(Pool {
            admission: Admission::new(n, factory.config.max_queue),
            factory,
            idle: Arc::new(Mutex::new(workers)),
        })
    }

    /// Requests that can be inside guests at once.
    pub fn size(&self) -> usize {
        self.factory.config.workers.max(1)
    }

    /// The isolation mode.
    pub fn isolation(&self) -> Isolation {
        self.factory.config.isolation
    }

    /// Calls the module's `score`.
    pub async fn score(
        &self,
        request: WitRequest,
        request_id: String,
    ) -> Result<WitResponse, CallError> {
        let max = self.factory.config.max_response_bytes;
        let answer = self
            .call(request_id, move |w| {
                w.scorer.call_score(&mut w.store, &request)
            })
            .await?
            .map_err(CallError::Guest)?;
        if answer.body.len() > max {
            return Err(CallError::Invalid(format!(
                "a response body of {} bytes is over the {max}-byte limit",
                answer.body.len()
            )));
        }
        Ok(answer)
    }

    /// Calls the module's `infer` for `model`.
    pub async fn infer(
        &self,
        model: String,
        inputs: Vec<NamedTensor>,
        request_id: String,
    ) -> Result<Vec<NamedTensor>, CallError> {
        let wit: Vec<WitTensor> = inputs
            .into_iter()
            .map(|n| {
                Ok(WitTensor {
                    datatype: n.tensor.ty.try_into().map_err(|e: crate::wit::NotWasiNn| {
                        CallError::Unsupported(format!("input '{}': {e}", n.name))
                    })?,
                    name: n.name,
                    shape: n.tensor.shape,
                    data: n.tensor.data,
                })
            })
            .collect::<Result<_, CallError>>()?;
        let out = self
            .call(request_id, move |w| {
                w.scorer.call_infer(&mut w.store, &model, &wit)
            })
            .await?
            .map_err(CallError::Guest)?;
        let max = self.factory.config.max_response_bytes;
        let total: usize = out.iter().map(|t| t.data.len()).sum();
        if total > max {
            return Err(CallError::Invalid(format!(
                "outputs of {total} bytes are over the {max}-byte limit"
            )));
        }
        out.into_iter()
            .map(|t| {
                let tensor = Tensor::new(t.shape, t.datatype.into(), t.data)
                    .map_err(|e| CallError::Invalid(format!("output '{}': {e}", t.name)))?;
                Ok(NamedTensor {
                    name: t.name,
                    tensor,
                })
            })
            .collect()
    }

    fn take_idle(&self) -> Option<Worker> {
        let mut idle = self.idle.lock().ok()?;
        let w = idle.pop();
        metrics().instances_idle.set(idle.len() as i64);
        w
    }

    /// Makes a replacement for a dropped instance off the request path.
    fn replace_in_background(&self) {
        if self.factory.config.isolation != Isolation::Pooled {
            return;
        }
        let factory = Arc::clone(&self.factory);
        let idle = Arc::clone(&self.idle);
        let size = self.size();
        tokio::task::spawn_blocking(move || match factory.instantiate() {
            Ok(w) => put_idle(&idle, w, size),
            Err(e) => {
                tracing::warn!(error = %e, "cannot replace a discarded instance; the next request will try again")
            }
        });
    }

    async fn call<R: Send + 'static>(
        &self,
        request_id: String,
        f: impl FnOnce(&mut Worker) -> wasmtime::Result<R> + Send + 'static,
    ) -> Result<R, CallError> {
        let _slot = self.admission.enter().await?;
        let ready = match self.factory.config.isolation {
            Isolation::Pooled => self.take_idle(),
            Isolation::Isolated => None,
        };
        let factory = Arc::clone(&self.factory);
        let timeout = factory.config.timeout;
        let scratch_cap = factory.config.scratch_mb.saturating_mul(1 << 20);
        let (worker, result) = crate::blocking::run(move || {
            // A fresh instance's init runs within the request's deadline
            // too, when that is the shorter.
            let mut worker = match ready {
                Some(w) => w,
                None => factory.instantiate_within(timeout.min(factory.config.init_timeout))?,
            };
            worker.tag.set(&request_id);
            worker.store.set_epoch_deadline(ticks(timeout));
            worker
                .store
                .data_mut()
                .nn
                .set_deadline(std::time::Instant::now().checked_add(timeout));
            let result = f(&mut worker);
            worker.outputs.iter().for_each(GuestOutput::flush_partial);
            worker.tag.set("");
            Ok::<_, InstanceError>((worker, result))
        })
        .await
        .map_err(|e| CallError::Host(format!("worker thread failed: {e}")))??;
        match result {
            Ok(r) => {
                let used = worker.scratch_bytes();
                if used > scratch_cap && worker.scratch.is_some() {
                    // Dropping the worker removes its scratch directory.
                    drop(worker);
                    self.replace_in_background();
                    return Err(CallError::Invalid(format!(
                        "the module wrote {used} bytes to {}, over its {scratch_cap}-byte cap; the instance was replaced",
                        super::GUEST_SCRATCH_DIR
                    )));
                }
                if self.factory.config.isolation == Isolation::Pooled {
                    put_idle(&self.idle, worker, self.size());
                }
                Ok(r)
            }
            Err(e) => {
                drop(worker);
                self.replace_in_background();
                Err(match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => {
                        metrics().timeouts.inc();
                        CallError::Timeout(timeout)
                    }
                    _ if format!("{e}").contains("fuel allocated for hostcalls") => {
                        CallError::Invalid(format!(
                            "the module handed the host more than {} bytes in one call, the most it copies (--max-response, --max-tensor); the instance was replaced",
                            self.factory.config.hostcall_bytes()
                        ))
                    }
                    _ => {
                        metrics().traps.inc();
                        CallError::Trap(format!("{e:#}"))
                    }
                })
            }
        }
    }
}
