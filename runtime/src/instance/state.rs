//! What one store holds: the guest's WASI context, its resource table, its
//! wasi-nn state, its limits, and the id of the request it is serving (so
//! the guest's log lines carry it).

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::instance::output::RequestTag;
use crate::nn::{NnState, NnView};
use crate::wit::sandscore::scoring::{logging, types};

/// Longest guest log line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 16 * 1024;

/// The data of one instance's store.
pub struct HostState {
    /// The guest's WASI context.
    pub wasi: WasiCtx,
    /// The store's resource table (WASI and wasi-nn handles).
    pub table: ResourceTable,
    /// The instance's wasi-nn state.
    pub nn: NnState,
    /// The store's resource limits (memory, tables, instances).
    pub limits: StoreLimits,
    /// The request being served (empty during `init`).
    pub tag: RequestTag,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// What the wasi-nn host sees of this store: its state and the table.
    pub fn nn_view(&mut self) -> NnView<'_> {
        NnView {
            nn: &mut self.nn,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl logging::Host for HostState {
    fn log(&mut self, level: logging::Level, mut message: String) -> wasmtime::Result<()> {
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let message = crate::escape::log_text(&message);
        let id = self.tag.get();
        let id = id.as_str();
        match level {
            logging::Level::Trace => tracing::trace!(target: "guest", request_id = id, "{message}"),
            logging::Level::Debug => tracing::debug!(target: "guest", request_id = id, "{message}"),
            logging::Level::Info => tracing::info!(target: "guest", request_id = id, "{message}"),
            logging::Level::Warn => tracing::warn!(target: "guest", request_id = id, "{message}"),
            logging::Level::Error => tracing::error!(target: "guest", request_id = id, "{message}"),
        }
        Ok(())
    }
}
