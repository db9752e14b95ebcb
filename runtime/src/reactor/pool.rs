//! Warm interpreters, one per worker thread.
//!
//! Each worker owns one interpreter for as long as it is sound, on a thread
//! with room for CPython's deep wasm stack. [`Admission`] bounds the
//! requests inside interpreters and waiting for one, as for components; a
//! request is handed to whichever worker is free. A trap, a deadline, an
//! `exit()` or a refused turn drops that interpreter, and the worker makes
//! a fresh one (import and `init()` again) before its next request.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Memory, Store, Trap, TypedFunc};

use super::door::{Answer, Failure, Request};
use super::{HOST_STACK, Reactor, State, WASM_STACK};
use crate::admission::Admission;
use crate::instance::output::{GuestOutput, RequestTag};
use crate::instance::pool::CallError;
use crate::instance::{InstanceError, Isolation, ticks};
use crate::metrics::metrics;
use crate::wit::{GuestError, GuestErrorCode};

/// The source of every request's turn: the driver's step.
const STEP: &str = "__sandscore.step()";

/// One initialised interpreter.
struct Live {
    store: Store<State>,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
    memory: Memory,
    tag: RequestTag,
    outputs: [GuestOutput; 2],
}

impl Live {
    /// Instantiates the interpreter, imports the script and runs its
    /// `init()`, within `limit`.
    fn start(reactor: &Reactor, limit: Duration) -> Result<Live, InstanceError> {
        let tag = RequestTag::default();
        let outputs = [
            GuestOutput::new("stdout", tag.clone()),
            GuestOutput::new("stderr", tag.clone()),
        ];
        let mut store = reactor.store(&outputs)?;
        let failed = |e: wasmtime::Error| InstanceError::Instantiate(format!("{e:#}"));
        store.set_epoch_deadline(ticks(limit));
        store
            .data_mut()
            .door
            .arm(None, Instant::now().checked_add(limit));
        let instance = reactor.pre.instantiate(&mut store).map_err(failed)?;
        metrics().instances_created.inc();
        let turn = instance
            .get_typed_func(&mut store, "turn")
            .map_err(failed)?;
        let alloc = instance
            .get_typed_func(&mut store, "host_alloc")
            .map_err(failed)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| InstanceError::World("the interpreter exports no memory".into()))?;
        let mut live = Live {
            store,
            turn,
            alloc,
            memory,
            tag,
            outputs,
        };
        // A JSON string is a Python string literal too.
        let script = serde_json::Value::String(reactor.guest_script()).to_string();
        let first =
            format!("import sandscore_reactor as __sandscore\n__sandscore.load({script})\n");
        let status = live.run_turn(&first, limit);
        live.outputs.iter().for_each(GuestOutput::flush_partial);
        let (_, failure) = live.store.data_mut().door.outcome();
        match (status, failure) {
            (Err(e), _) if matches!(e.downcast_ref(), Some(Trap::Interrupt)) => {
                Err(InstanceError::InitTimeout(limit))
            }
            (Err(e), _) => Err(InstanceError::Init(format!("trapped: {e:#}"))),
            (Ok(_), Some(Failure::Init(m))) => Err(InstanceError::Init(m)),
            (Ok(0), _) => Ok(live),
            (Ok(s), _) => Err(InstanceError::Init(format!(
                "the interpreter's first turn ended with status {s}; its traceback is in the log"
            ))),
        }
    }

    /// One turn of `source`, within `limit`: the interpreter's status.
    fn run_turn(&mut self, source: &str, limit: Duration) -> wasmtime::Result<i32> {
        self.store.set_epoch_deadline(ticks(limit));
        let len = i32::try_from(source.len())?;
        let at = self.alloc.call(&mut self.store, len)?;
        if at == 0 {
            wasmtime::bail!("the interpreter is out of memory");
        }
        self.memory
            .write(&mut self.store, at as usize, source.as_bytes())?;
        self.turn.call(&mut self.store, (at, len))
    }

    /// Scores one request; also whether the interpreter is still sound.
    fn score(
        &mut self,
        request: Request,
        request_id: &str,
        timeout: Duration,
    ) -> (Result<Answer, CallError>, bool) {
        self.tag.set(request_id);
        self.store
            .data_mut()
            .door
            .arm(Some(request), Instant::now().checked_add(timeout));
        let status = self.run_turn(STEP, timeout);
        self.outputs.iter().for_each(GuestOutput::flush_partial);
        self.tag.set("");
        let (answer, failure) = self.store.data_mut().door.outcome();
        let guest = |code, message: String| Err(CallError::Guest(GuestError { code, message }));
        match status {
            Err(e) if matches!(e.downcast_ref(), Some(Trap::Interrupt)) => {
                metrics().timeouts.inc();
                (Err(CallError::Timeout(timeout)), false)
            }
            Err(e) => {
                metrics().traps.inc();
                (Err(CallError::Trap(format!("{e:#}"))), false)
            }
            Ok(status) => {
                // 256 and up: the script called exit(); below 0: refused.
                let sound = (0..256).contains(&status);
                let result = match (answer, failure) {
                    (Some(a), _) => Ok(a),
                    (None, Some(Failure::BadRequest(m))) => guest(GuestErrorCode::BadRequest, m),
                    (None, Some(Failure::NotFound(m))) => guest(GuestErrorCode::NotFound, m),
                    (None, Some(Failure::Internal(m) | Failure::Init(m))) => {
                        guest(GuestErrorCode::Internal, m)
                    }
                    (None, None) => guest(
                        GuestErrorCode::Internal,
                        format!(
                            "the script gave no answer (its turn ended with status {status}); see the log"
                        ),
                    ),
                };
                (result, sound)
            }
        }
    }
}

struct Job {
    request: Request,
    request_id: String,
    reply: tokio::sync::oneshot::Sender<Result<Answer, CallError>>,
}

/// The interpreters, and the queue to them.
pub struct Pool {
    /// Bounded: a request whose client went away still holds a place here
    /// until a worker skips it, so admission alone cannot bound the queue.
    jobs: Mutex<SyncSender<Job>>,
    admission: Admission,
    workers: usize,
    max_queue: usize,
}

fn worker(
    reactor: Arc<Reactor>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    started: SyncSender<Result<(), InstanceError>>,
    runtime: Option<tokio::runtime::Handle>,
) {
    // Native compute a script starts stops at its deadline through timers
    // on the server's async runtime (ONNX Runtime's terminate flag).
    let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
    let init = reactor.config.init_timeout;
    let timeout = reactor.config.timeout;
    let mut live = match Live::start(&reactor, init) {
        Ok(l) => {
            let _ = started.send(Ok(()));
            Some(l)
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        // The client went away while this waited: nothing to answer.
        if job.reply.is_closed() {
            continue;
        }
        if live.is_none() {
            // Only when the replacement made after a failure failed too; a
            // request waits no longer than its own deadline for it.
            match Live::start(&reactor, timeout.min(init)) {
                Ok(l) => live = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a fresh Python interpreter; the next request tries again");
                    let _ = job.reply.send(Err(CallError::Instance(e)));
                    continue;
                }
            }
        }
        let Some(l) = live.as_mut() else { continue };
        let scored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            l.score(job.request, &job.request_id, timeout)
        }));
        let (result, sound) = scored.unwrap_or_else(|_| {
            (
                Err(CallError::Host(
                    "the Python worker panicked; its interpreter was replaced".into(),
                )),
                false,
            )
        });
        let _ = job.reply.send(result);
        // Isolated mode: nothing of one request reaches the next. A dropped
        // interpreter is replaced now, before the next request comes.
        if !sound || reactor.config.isolation == Isolation::Isolated {
            live = Live::start(&reactor, init)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot replace a Python interpreter; the next request tries again"))
                .ok();
        }
    }
}

impl Pool {
    /// Starts the workers, each with an initialised interpreter; the first
    /// failure to start (the script's `init()`, most often) is the error.
    pub fn start(reactor: Arc<Reactor>) -> Result<Pool, InstanceError> {
        let workers = reactor.config.workers.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel(workers + reactor.config.max_queue);
        let rx = Arc::new(Mutex::new(rx));
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(workers);
        let runtime = tokio::runtime::Handle::try_current().ok();
        for i in 0..workers {
            let (reactor, rx, started) =
                (Arc::clone(&reactor), Arc::clone(&rx), started_tx.clone());
            let runtime = runtime.clone();
            std::thread::Builder::new()
                .name(format!("python-{i}"))
                .stack_size(WASM_STACK.max(reactor.config.max_stack) + HOST_STACK)
                .spawn(move || worker(reactor, rx, started, runtime))
                .map_err(|e| InstanceError::Engine(format!("cannot start a worker thread: {e}")))?;
        }
        drop(started_tx);
        for _ in 0..workers {
            match started_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(InstanceError::Engine("a worker thread died".into())),
            }
        }
        metrics().instances_idle.set(workers as i64);
        Ok(Pool {
            jobs: Mutex::new(tx),
            admission: Admission::new(workers, reactor.config.max_queue),
            workers,
            max_queue: reactor.config.max_queue,
        })
    }

    /// Requests that can be inside interpreters at once.
    pub fn size(&self) -> usize {
        self.workers
    }

    /// Scores one `/score` request with the script's `run`.
    pub async fn score(&self, request: Request, request_id: String) -> Result<Answer, CallError> {
        let _slot = self.admission.enter().await?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            request,
            request_id,
            reply,
        };
        match self
            .jobs
            .lock()
            .map_err(|_| CallError::Host("the worker queue is poisoned".into()))?
            .try_send(job)
        {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(CallError::Overloaded(crate::admission::Overloaded {
                    running: self.workers,
                    queued: self.max_queue,
                }));
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(CallError::Host("every Python worker has stopped".into()));
            }
        }
        answer
            .await
            .map_err(|_| CallError::Host("a Python worker stopped during the request".into()))?
    }
}
