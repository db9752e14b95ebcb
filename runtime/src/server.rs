//! `sandscore serve`: bind, load in the background, serve until SIGTERM or
//! Ctrl-C, then stop accepting and drain in-flight requests within a grace
//! period.
//!
//! Connections are driven by hyper directly (not `axum::serve`) for the
//! limits a public endpoint needs: a deadline for request headers (slow
//! clients holding connections open), a cap on header size, and a deadline
//! on write progress (clients that never read their answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod write_deadline;

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

    /// Largest request head (request line and headers), in KiB.
    #[arg(
        long = "max-header",
        env = "SANDSCORE_MAX_HEADER_KB",
        default_value_t = 64
    )]
    pub max_header_kb: usize,

    /// Deadline for a client to send its request headers, in milliseconds.
    #[arg(
        long = "header-timeout",
        env = "SANDSCORE_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_timeout_ms: u64,

    /// Deadline for a client to send its request body, in milliseconds.
    #[arg(
        long = "body-timeout",
        env = "SANDSCORE_BODY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub body_timeout_ms: u64,

    /// Longest a client may leave a response unread (no byte accepted by
    /// its socket), in milliseconds; then the connection is closed.
    #[arg(
        long = "write-timeout",
        env = "SANDSCORE_WRITE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub write_timeout_ms: u64,

    /// Most connections served at once; further clients wait in the
    /// kernel's accept queue until one closes. With the response and head
    /// limits, this bounds what connections can make the server hold.
    #[arg(
        long = "max-connections",
        env = "SANDSCORE_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,

    /// After SIGTERM, how long in-flight requests may take to finish, in seconds.
    #[arg(
        long = "shutdown-grace",
        env = "SANDSCORE_SHUTDOWN_GRACE_S",
        default_value_t = 30
    )]
    pub shutdown_grace_s: u64,
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.runtime.check_user().map_err(anyhow::Error::msg)?;
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

    let max_head = args.max_header_kb.saturating_mul(1024);
    let state = Arc::new(AppState::new(
        args.max_body_mb.saturating_mul(1 << 20),
        Duration::from_millis(args.body_timeout_ms),
        max_head,
    ));
    let mut loader = {
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
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(args.header_timeout_ms))
        // hyper's read buffer bounds what it holds; the exact head limit is
        // checked on the parsed head (`http::head_limit`).
        .max_buf_size(max_head.max(8192));
    let write_timeout = Duration::from_millis(args.write_timeout_ms.max(1));
    let mut signal = std::pin::pin!(shutdown_signal());
    let mut loading = true;
    let slots = Arc::new(Semaphore::new(args.max_connections.max(1)));
    loop {
        tokio::select! {
            accepted = accept(&listener, &slots) => {
                let (stream, slot) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let stream = write_deadline::WriteDeadline::new(stream, write_timeout);
                let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                    drop(slot);
                });
            }
            loaded = &mut loader, if loading => {
                loading = false;
                loaded.context("startup thread failed")?.context("startup failed")?;
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    let grace = Duration::from_secs(args.shutdown_grace_s);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained; stopped"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over with requests still in flight; stopping"),
    }
    Ok(())
}

/// The next connection, once one of the `slots` is free.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, _peer) = listener.accept().await?;
    Ok((stream, slot))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; no new connections, draining in-flight requests");
}
