//! Running CPU work (guest code, native inference) from async handlers.
//!
//! On the server's multi-threaded runtime the work runs in place
//! (`block_in_place`): the handler's thread does it, and the runtime moves
//! its other tasks elsewhere meanwhile. That saves the two cross-thread
//! hand-offs of `spawn_blocking`, which on a small machine cost more than a
//! small model's whole inference. Elsewhere (the single-threaded runtime of
//! `sandscore score`) it falls back to `spawn_blocking`. A panic becomes an
//! error either way.
//!
//! Even `block_in_place` hands the runtime's other tasks to another thread,
//! and that costs more than a small model's inference (a 64-feature MLP
//! served at half the rate of a plain server). So native work of a kind
//! measured short ([`Pace`]: under [`INLINE_BELOW`] lately, on inputs not
//! much larger than usual) runs on the async thread itself; the first run
//! of a kind, long kinds and unusually large inputs are handed off as
//! above. Guest code never runs in place: wasmtime-wasi's blocking calls
//! (`block_on` inside a flush or a poll) cannot run on an async thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` to completion without stalling other async tasks.
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    let guarded =
        move || catch_unwind(AssertUnwindSafe(f)).map_err(|_| "the work panicked".to_string());
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(guarded),
        _ => tokio::task::spawn_blocking(guarded)
            .await
            .map_err(|e| e.to_string())?,
    }
}

/// The CPUs this process may use (its affinity and cgroup quota, as the
/// standard library reads them), at most `most`: the default count of
/// workers and of batches running at once, one per core.
pub fn cpus(most: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(most))
}

/// Work measured shorter than this runs on the async thread.
pub const INLINE_BELOW: Duration = Duration::from_micros(100);

/// What one kind of work (a model's inference) has cost lately: a moving
/// average of its time and of its input size.
#[derive(Debug)]
pub struct Pace {
    /// Nanoseconds; `u64::MAX` until measured.
    ns: AtomicU64,
    bytes: AtomicU64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            ns: AtomicU64::new(u64::MAX),
            bytes: AtomicU64::new(0),
        }
    }
}

impl Pace {
    /// Whether work of `size` input bytes is expected to be short.
    fn short(&self, size: usize) -> bool {
        let usual = self.bytes.load(Ordering::Relaxed);
        self.ns.load(Ordering::Relaxed) <= INLINE_BELOW.as_nanos() as u64
            && size as u64 <= usual.saturating_mul(2).saturating_add(4096)
    }

    /// Folds one run into the averages (weight 1/8).
    fn record(&self, took: Duration, size: usize) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX - 1);
        let old = self.ns.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            ns
        } else {
            old - old / 8 + ns / 8
        };
        self.ns.store(new, Ordering::Relaxed);
        let b = self.bytes.load(Ordering::Relaxed);
        self.bytes
            .store(b - b / 8 + size as u64 / 8, Ordering::Relaxed);
    }
}

/// [`run`], in place when `pace` says work of `size` input bytes is short.
/// Only for work that never blocks on the async runtime itself and that a
/// deadline stops from outside the runtime (ONNX Runtime's runs: a hostile
/// input that makes one run long holds an async thread until its deadline
/// at most, and the pace sends the next ones off-thread).
pub async fn run_paced<R: Send + 'static>(
    pace: &std::sync::Arc<Pace>,
    size: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let multi = matches!(
        Handle::try_current().map(|h| h.runtime_flavor()),
        Ok(RuntimeFlavor::MultiThread)
    );
    if multi && pace.short(size) {
        let started = Instant::now();
        let out = catch_unwind(AssertUnwindSafe(f)).map_err(|_| "the work panicked".to_string());
        pace.record(started.elapsed(), size);
        return out;
    }
    let p = std::sync::Arc::clone(pace);
    run(move || {
        let started = Instant::now();
        let out = f();
        p.record(started.elapsed(), size);
        out
    })
    .await
}
