//! `wasi:io/poll` bounded by the request's deadline.
//!
//! Epoch interruption stops guest code, but not a guest that waits inside
//! the host: `std::thread::sleep`, a `subscribe-duration` pollable's `block`
//! or `poll` over a far-off instant park the worker thread in WASI's own
//! implementation, where no epoch is checked. These two calls are the only
//! blocking waits a guest can reach (it has no sockets, stdin is empty, and
//! stdout/stderr never block), so the linker's `poll` and `block` are
//! replaced by the same waits cut off at the deadline. Past it they trap
//! with [`Trap::Interrupt`], which the pool answers as the timeout it is.

use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime::{Result, Trap};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll as wait;
use wasmtime_wasi::p2::bindings::sync::io::poll as linked;
use wasmtime_wasi::runtime::in_tokio;

use crate::instance::state::HostState;

/// The resource table seen with the deadline of the call in progress.
pub struct BoundedPoll<'a> {
    table: &'a mut ResourceTable,
    deadline: Option<Instant>,
}

struct HasBoundedPoll;

impl HasData for HasBoundedPoll {
    type Data<'a> = BoundedPoll<'a>;
}

/// Replaces `wasi:io/poll` in `linker` (already holding WASI) by the
/// deadline-bounded waits.
pub fn shadow(linker: &mut Linker<HostState>) -> Result<()> {
    linker.allow_shadowing(true);
    let linked = linked::add_to_linker::<HostState, HasBoundedPoll>(linker, |s| BoundedPoll {
        deadline: s.nn.deadline(),
        table: &mut s.table,
    });
    linker.allow_shadowing(false);
    linked
}

/// Runs `wait` until it completes or the deadline passes.
fn bounded<T>(deadline: Option<Instant>, wait: impl Future<Output = Result<T>>) -> Result<T> {
    in_tokio(async move {
        match deadline {
            None => wait.await,
            Some(at) => tokio::time::timeout_at(at.into(), wait)
                .await
                .unwrap_or_else(|_| Err(Trap::Interrupt.into())),
        }
    })
}

impl linked::Host for BoundedPoll<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> Result<Vec<u32>> {
        bounded(self.deadline, wait::Host::poll(self.table, pollables))
    }
}

impl linked::HostPollable for BoundedPoll<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> Result<bool> {
        linked::HostPollable::ready(self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> Result<()> {
        bounded(
            self.deadline,
            wait::HostPollable::block(self.table, pollable),
        )
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> Result<()> {
        linked::HostPollable::drop(self.table, pollable)
    }
}
