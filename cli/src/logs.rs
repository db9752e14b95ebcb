//! Logs on stderr: `RUST_LOG` when set, else the command's level with the
//! chatty libraries turned down; and ONNX Runtime's telemetry notices,
//! which it prints at WARN while creating its environment even with
//! telemetry off, dropped (they say nothing about serving).

use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

use crate::LogFormat;

/// Drops ONNX Runtime's telemetry notices (`ort::logging` events whose
/// message speaks of telemetry).
struct NoTelemetry;

struct Message(bool);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains("telemetry") {
            self.0 = true;
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && value.contains("telemetry") {
            self.0 = true;
        }
    }
}

impl<S> Filter<S> for NoTelemetry {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _: &Context<'_, S>) -> bool {
        if !event.metadata().target().starts_with("ort") {
            return true;
        }
        let mut m = Message(false);
        event.record(&mut m);
        !m.0
    }
}

/// Starts logging at `default_level` (unless `RUST_LOG` says otherwise).
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // wasmtime-wasi's preview 1 calls are INFO spans: they would prefix
        // every line a Python script prints.
        EnvFilter::new(format!(
            "{default_level},ort=warn,wasmtime_wasi=warn,wiggle=warn"
        ))
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = match format {
        LogFormat::Plain => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    Registry::default()
        .with(layer.with_filter(NoTelemetry).with_filter(filter))
        .init();
}
