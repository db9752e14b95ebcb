//! Running CPU work (guest code, native inference) from async handlers.
//!
//! On the server's multi-threaded runtime the work runs in place
//! (`block_in_place`): the handler's thread does it, and the runtime moves
//! its other tasks elsewhere meanwhile. That saves the two cross-thread
//! hand-offs of `spawn_blocking`, which on a small machine cost more than a
//! small model's whole inference. Elsewhere (the single-threaded runtime of
//! `sandscore score`) it falls back to `spawn_blocking`. A panic becomes an
//! error either way.

use std::panic::{AssertUnwindSafe, catch_unwind};

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
