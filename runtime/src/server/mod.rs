//! The HTTP server: bind, load in the background, serve until SIGTERM or
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

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::TcpIncoming;

mod write_deadline;

use crate::http::{AppState, router};
use crate::service::{Service, ServiceConfig, StartError};

/// Options of the HTTP server itself.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Where gRPC listens (`inference.GRPCInferenceService`); `None`: no gRPC.
    pub grpc_addr: Option<SocketAddr>,
    /// Largest request body (and gRPC request message), in bytes.
    pub max_body: usize,
    /// Largest gRPC answer's tensor bytes (the service's response limit).
    pub max_response: usize,
    /// Longest a gRPC call may take when its client sets no shorter
    /// `grpc-timeout` (the scoring deadline applies inside it too).
    pub grpc_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Deadline for a client to send its request headers.
    pub header_timeout: Duration,
    /// Deadline for a client to send its request body.
    pub body_timeout: Duration,
    /// Longest a client may leave a response unread (no byte accepted by
    /// its socket); then the connection is closed.
    pub write_timeout: Duration,
    /// Most connections served at once; further clients wait in the
    /// kernel's accept queue until one closes. With the response and head
    /// limits, this bounds what connections can make the server hold.
    pub max_connections: usize,
    /// After SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    /// Which requests get an access log line.
    pub access_log: crate::http::AccessLog,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// The service (models, module) could not start.
    #[error("startup failed: {0}")]
    Start(#[from] StartError),
    /// The thread that starts the service died.
    #[error("startup thread failed: {0}")]
    Thread(String),
}

/// Runs the server until a shutdown signal: binds `config.addr` (printing
/// `listening on http://ADDR`), starts `service` in the background while
/// liveness already answers, and drains within the grace period.
pub async fn serve(config: ServerConfig, service: ServiceConfig) -> Result<(), ServeError> {
    let addr = config.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let grpc = match config.grpc_addr {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            Some(l)
        }
        None => None,
    };
    // Tests and scripts read these lines to find ephemeral ports.
    if let Some(Ok(g)) = grpc.as_ref().map(TcpListener::local_addr) {
        println!("grpc listening on {g}");
        tracing::info!(%g, "gRPC listening");
    }
    println!("listening on http://{bound}");
    tracing::info!(%bound, "listening");

    let max_head = config.max_head;
    let mut state = AppState::new(config.max_body, config.body_timeout, max_head);
    state.access_log = config.access_log;
    let state = Arc::new(state);
    let mut loader = {
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || {
            let service = Service::start(&service)?;
            if service.module().is_none() {
                tracing::info!(
                    models = service.model_names().len(),
                    "no module: the models answer V2 (/v2/models/NAME/infer, gRPC ModelInfer); /score needs a module (AZUREML_ENTRY_SCRIPT)"
                );
            }
            let _ = state.service.set(Arc::new(service));
            tracing::info!("ready");
            Ok::<_, StartError>(())
        })
    };
    let app = router(Arc::clone(&state));
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = grpc.map(|listener| {
        let service = crate::grpc::server(
            Arc::clone(&state.service),
            config.max_body,
            config.max_response,
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .timeout(config.grpc_timeout)
                // Streams one connection may hold open at once: each may
                // carry a message of up to --max-body.
                .max_concurrent_streams(Some(GRPC_STREAMS))
                .concurrency_limit_per_connection(GRPC_STREAMS as usize)
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = grpc_stopped.await;
                    },
                ),
        )
    });
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // hyper's read buffer bounds what it holds; the exact head limit is
        // checked on the parsed head (`http::head_limit`).
        .max_buf_size(max_head.max(8192));
    let write_timeout = config.write_timeout.max(Duration::from_millis(1));
    let mut signal = std::pin::pin!(shutdown_signal());
    let mut loading = true;
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
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
                loaded.map_err(|e| ServeError::Thread(e.to_string()))??;
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    let _ = stop_grpc.send(());
    let grace = config.shutdown_grace;
    let drained = async {
        graceful.shutdown().await;
        if let Some(g) = grpc {
            let _ = g.await;
        }
    };
    tokio::select! {
        () = drained => tracing::info!("all connections drained; stopped"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over with requests still in flight; stopping"),
    }
    Ok(())
}

/// Most gRPC calls one connection may have in flight.
const GRPC_STREAMS: u32 = 64;

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
