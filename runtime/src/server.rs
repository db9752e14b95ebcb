//! `sandscore serve`: bind, load in the background, serve until SIGTERM or
//! Ctrl-C, then drain in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::RuntimeArgs;
use crate::http::{AppState, router};
use crate::service::Service;

/// Options of the HTTP server itself.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "SERVER_PORT", default_value_t = 5001)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "SANDSCORE_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Largest request body, in MiB.
    #[arg(
        long = "max-body",
        env = "SANDSCORE_MAX_BODY_MB",
        default_value_t = 100
    )]
    pub max_body_mb: usize,
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("'{}' is not an IP address to listen on", args.host))?;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is another server using port {}? Pick another with --port or SERVER_PORT", args.port)
    })?;
    let bound = listener.local_addr()?;
    // Tests and scripts read this line to find an ephemeral port.
    println!("listening on http://{bound}");
    tracing::info!(%bound, "listening");

    let state = Arc::new(AppState::new(args.max_body_mb.saturating_mul(1 << 20)));
    let loader = {
        let state = Arc::clone(&state);
        let runtime = args.runtime.clone();
        tokio::task::spawn_blocking(move || {
            let service = Service::start(&runtime)?;
            let _ = state.service.set(Arc::new(service));
            tracing::info!("ready");
            Ok::<_, anyhow::Error>(())
        })
    };
    let app = router(Arc::clone(&state));
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    tokio::select! {
        served = &mut server => {
            // Stopped while still loading.
            served.context("server task failed")?.context("server failed")?;
            return Ok(());
        }
        loaded = loader => {
            loaded.context("startup thread failed")?.context("startup failed")?;
        }
    }
    server
        .await
        .context("server task failed")?
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
