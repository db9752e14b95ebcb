//! `sandscore serve`: the HTTP server's flags, turned into the library's
//! [`ServerConfig`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sandscore_runtime::server::{ServeError, ServerConfig, serve};

use crate::args::RuntimeArgs;

/// Options of the HTTP server itself.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "SERVER_PORT", default_value_t = 5001)]
    pub port: u16,

    /// Port of the gRPC service (KServe V2 / Triton's
    /// `inference.GRPCInferenceService`); 0 turns gRPC off.
    #[arg(
        long = "grpc-port",
        env = "SANDSCORE_GRPC_PORT",
        default_value_t = 8001
    )]
    pub grpc_port: u16,

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

    /// Access log: `off`, `on` (a line per request), or N (one request in
    /// N). Failures are logged with their cause either way.
    #[arg(long, env = "SANDSCORE_ACCESS_LOG", default_value = "off")]
    pub access_log: sandscore_runtime::http::AccessLog,
}

impl ServeArgs {
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let addr: SocketAddr = format!("{}:{}", self.host, self.port)
            .parse()
            .with_context(|| format!("'{}' is not an IP address to listen on", self.host))?;
        let grpc_addr = (self.grpc_port != 0).then(|| SocketAddr::new(addr.ip(), self.grpc_port));
        Ok(ServerConfig {
            addr,
            grpc_addr,
            max_response: self.runtime.max_response_mb.saturating_mul(1 << 20),
            grpc_timeout: Duration::from_millis(self.runtime.timeout_ms.saturating_add(10_000)),
            max_body: self.max_body_mb.saturating_mul(1 << 20),
            max_head: self.max_header_kb.saturating_mul(1024),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms.max(1)),
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_s),
            access_log: self.access_log,
        })
    }
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    args.runtime.check_user().map_err(anyhow::Error::msg)?;
    let config = args.server_config()?;
    let port = args.port;
    match serve(config, args.runtime.service_config()).await {
        Err(ServeError::Bind { addr, source }) => Err(anyhow::anyhow!(
            "cannot listen on {addr}: {source}: is another server using port {}? Pick another with {}",
            addr.port(),
            if addr.port() == port {
                "--port or SERVER_PORT"
            } else {
                "--grpc-port (0 turns gRPC off)"
            }
        )),
        Err(ServeError::Start(e)) => Err(crate::advice::explained(e)).context("startup failed"),
        other => other.map_err(anyhow::Error::from),
    }
}
