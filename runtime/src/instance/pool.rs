//! Warm instances shared by concurrent requests.
//!
//! `workers` permits bound how many requests are inside guests at once;
//! each holds one instance for the length of its call, on a blocking thread
//! (guest code and native inference are CPU work, not async work). An
//! instance that trapped or ran out of time is dropped, never reused; its
//! replacement is made on the next request that finds the pool short.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Trap;

use super::bindings::{GuestError, WitRequest, WitResponse, WitTensor};
use super::{Factory, InstanceError, Worker, ticks};
use crate::tensor::{NamedTensor, Tensor};

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
    /// A fresh instance could not be made.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The module returned something malformed.
    #[error("the scoring module returned an invalid result: {0}")]
    Invalid(String),
    /// The server is shutting down or a worker thread died.
    #[error("internal error: {0}")]
    Host(String),
}

/// The instance pool.
pub struct Pool {
    factory: Arc<Factory>,
    idle: Mutex<Vec<Worker>>,
    permits: Semaphore,
}

impl Pool {
    /// Makes and initialises `factory.config.workers` instances.
    pub fn start(factory: Arc<Factory>) -> Result<Self, InstanceError> {
        let n = factory.config.workers.max(1);
        let workers = (0..n)
            .map(|_| factory.instantiate())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pool {
            factory,
            idle: Mutex::new(workers),
            permits: Semaphore::new(n),
        })
    }

    /// Instances ready and waiting.
    pub fn idle(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Requests that can be inside guests at once.
    pub fn size(&self) -> usize {
        self.factory.config.workers.max(1)
    }

    /// Calls the module's `score`.
    pub async fn score(
        &self,
        request: WitRequest,
        request_id: String,
    ) -> Result<WitResponse, CallError> {
        self.call(request_id, move |w| {
            w.scorer.call_score(&mut w.store, &request)
        })
        .await?
        .map_err(CallError::Guest)
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
            .map(|n| WitTensor {
                name: n.name,
                shape: n.tensor.shape,
                datatype: n.tensor.ty.into(),
                data: n.tensor.data,
            })
            .collect();
        let out = self
            .call(request_id, move |w| {
                w.scorer.call_infer(&mut w.store, &model, &wit)
            })
            .await?
            .map_err(CallError::Guest)?;
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

    async fn call<R: Send + 'static>(
        &self,
        request_id: String,
        f: impl FnOnce(&mut Worker) -> wasmtime::Result<R> + Send + 'static,
    ) -> Result<R, CallError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CallError::Host("instance pool closed".into()))?;
        let ready = self.idle.lock().ok().and_then(|mut v| v.pop());
        let factory = Arc::clone(&self.factory);
        let timeout = factory.config.timeout;
        let (worker, result) = tokio::task::spawn_blocking(move || {
            let mut worker = match ready {
                Some(w) => w,
                None => factory.instantiate()?,
            };
            worker.store.data_mut().request_id = request_id;
            worker.store.set_epoch_deadline(ticks(timeout));
            let result = f(&mut worker);
            worker.store.data_mut().request_id.clear();
            Ok::<_, InstanceError>((worker, result))
        })
        .await
        .map_err(|e| CallError::Host(format!("worker thread failed: {e}")))??;
        match result {
            Ok(r) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(worker);
                }
                Ok(r)
            }
            Err(e) => {
                drop(worker);
                Err(match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => CallError::Timeout(timeout),
                    _ => CallError::Trap(format!("{e:#}")),
                })
            }
        }
    }
}
