//! Admission control: at most `slots` requests run at once, at most
//! `max_queue` more wait, and the rest are refused at once (503) instead of
//! queueing without bound while clients time out.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::metrics::metrics;

/// The queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the server is at capacity ({running} running, {queued} queued); retry shortly")]
pub struct Overloaded {
    /// Requests running (the number of slots, all taken).
    pub running: usize,
    /// Requests waiting for a slot when this one was refused.
    pub queued: usize,
}

/// A bounded wait for one of a fixed number of slots.
pub struct Admission {
    slots: Semaphore,
    size: usize,
    waiting: AtomicUsize,
    max_queue: usize,
}

impl Admission {
    /// `slots` concurrent runs, `max_queue` waiters.
    pub fn new(slots: usize, max_queue: usize) -> Self {
        Admission {
            slots: Semaphore::new(slots),
            size: slots,
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    /// Takes a slot, waiting if the queue has room.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, Overloaded> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        if queued >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics().rejected.inc();
            return Err(Overloaded {
                running: self.size,
                queued,
            });
        }
        metrics().queue_depth.inc();
        let permit = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        metrics().queue_depth.dec();
        // The semaphore is never closed.
        permit.map_err(|_| Overloaded {
            running: self.size,
            queued: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_refuses_at_once() {
        let a = Admission::new(1, 1);
        let first = a.enter().await.expect("slot");
        let waiter = async { a.enter().await.map(|_| ()) };
        let refused = async {
            tokio::task::yield_now().await;
            a.enter().await.map(|_| ())
        };
        let release = async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            drop(first);
        };
        let (w, r, ()) = tokio::join!(waiter, refused, release);
        assert!(w.is_ok(), "the queued request runs once the slot frees");
        assert!(r.is_err(), "the request past the queue is refused");
    }
}
