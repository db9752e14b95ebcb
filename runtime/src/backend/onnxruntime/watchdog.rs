//! Stops ONNX Runtime runs at their deadline through ORT's terminate flag,
//! from one process-wide thread: the deadline holds whether or not the
//! caller is on an async runtime (`sandscore score` and `check` are not),
//! and even when every async thread is busy with inference run in place.

use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

use ort::session::RunOptions;

use crate::backend::BackendError;

/// Runs with a deadline: when, and the flag that stops each (gone once its
/// run ended).
struct Timers {
    runs: Mutex<Vec<(Instant, Weak<RunOptions>)>>,
    changed: Condvar,
}

fn timers() -> Option<&'static Timers> {
    static TIMERS: OnceLock<Option<&'static Timers>> = OnceLock::new();
    *TIMERS.get_or_init(|| {
        let t: &'static Timers = Box::leak(Box::new(Timers {
            runs: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }));
        let started = std::thread::Builder::new()
            .name("ort-deadlines".into())
            .spawn(move || watch(t));
        match started {
            Ok(_) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the ONNX Runtime deadline thread; runs are not stopped at their deadline");
                None
            }
        }
    })
}

/// Sleeps until the earliest deadline, stops every run past its own, and
/// again.
fn watch(t: &Timers) {
    let mut runs = t.runs.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        runs.retain(|(deadline, flag)| {
            let Some(flag) = flag.upgrade() else {
                return false;
            };
            if *deadline > now {
                return true;
            }
            if let Err(e) = flag.terminate() {
                tracing::warn!("cannot stop an ONNX Runtime run at its deadline: {e}");
            }
            false
        });
        runs = match runs.iter().map(|(d, _)| *d).min() {
            Some(next) => {
                let wait = next.saturating_duration_since(Instant::now());
                t.changed
                    .wait_timeout(runs, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => t.changed.wait(runs).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// One run's deadline, watched while this lives.
pub(super) struct Watchdog {
    /// The run's options, whose terminate flag the thread sets.
    pub(super) options: Arc<RunOptions>,
    deadline: Instant,
}

impl Watchdog {
    /// Options for a run stopped at `deadline`.
    pub(super) fn arm(deadline: Instant) -> Result<Self, BackendError> {
        let options = Arc::new(
            RunOptions::new().map_err(|e| BackendError::Runtime(format!("run options: {e}")))?,
        );
        if let Some(t) = timers() {
            t.runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((deadline, Arc::downgrade(&options)));
            t.changed.notify_one();
        }
        Ok(Watchdog { options, deadline })
    }

    /// Whether the run was (or would now be) stopped by the deadline.
    pub(super) fn fired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}
