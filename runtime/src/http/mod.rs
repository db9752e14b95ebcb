//! The HTTP face: Azure ML's scoring routes and the Open Inference Protocol
//! V2 REST routes over one axum router.
//!
//! The listener binds before models and module load, so liveness answers at
//! once while readiness (and scoring) answer 503 until the service is ready.

mod azureml;
pub mod error;
mod openapi;
mod repository;
mod v2;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::Instrument;

use crate::metrics::metrics;
use crate::service::{Ready, Service};
use error::{ApiError, Style};

/// The OpenAPI document served at `/swagger.json`.
pub const OPENAPI_YAML: &str = include_str!("../../../spec/openapi.yaml");

/// Shared state of every handler.
pub struct AppState {
    /// Set once models and module are loaded (shared with gRPC).
    pub service: Ready,
    /// `/swagger.json`, parsed once.
    pub openapi: serde_json::Value,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Longest a client may take to send its body.
    pub body_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Which requests get an access log line.
    pub access_log: AccessLog,
}

/// Which requests get an access log line (`--access-log`). Off by default,
/// as in Triton: at tens of thousands of requests a second, formatting one
/// line each is a fifth of the server's time. Failures are logged with
/// their cause (at `warn`, by the error path) whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// None.
    Off,
    /// Every request.
    All,
    /// One request in this many.
    Sampled(u64),
}

impl std::str::FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" | "0" => Ok(AccessLog::Off),
            "on" | "all" | "1" => Ok(AccessLog::All),
            n => n
                .parse::<u64>()
                .map(AccessLog::Sampled)
                .map_err(|_| format!("'{s}' is not off, on, or N (one request in N)")),
        }
    }
}

impl AccessLog {
    /// Whether the request numbered `n` (from 0) is logged.
    fn logs(self, n: u64) -> bool {
        match self {
            AccessLog::Off => false,
            AccessLog::All => true,
            AccessLog::Sampled(every) => every > 0 && n.is_multiple_of(every),
        }
    }
}

impl AppState {
    /// State for a server that is not ready yet.
    pub fn new(max_body: usize, body_timeout: Duration, max_head: usize) -> Self {
        let openapi = serde_yaml_ng::from_str(OPENAPI_YAML).unwrap_or_else(|e| {
            tracing::error!(error = %e, "spec/openapi.yaml does not parse");
            serde_json::Value::Null
        });
        AppState {
            service: Ready::default(),
            openapi,
            max_body,
            body_timeout,
            max_head,
            access_log: AccessLog::Off,
        }
    }

    fn ready(&self, style: Style) -> Result<&Arc<Service>, ApiError> {
        self.service.get().ok_or_else(|| ApiError::not_ready(style))
    }
}

type Shared = Arc<AppState>;

/// The request id of the request being handled.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Every route.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(azureml::health))
        .route("/score", get(azureml::score_get).post(azureml::score_post))
        .route("/swagger.json", get(azureml::swagger))
        .route("/metrics", get(prometheus))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/stats", get(repository::all_stats))
        .route("/v2/models/{name}", get(v2::model_metadata))
        .route("/v2/models/{name}/stats", get(repository::model_stats))
        .route(
            "/v2/models/{name}/versions/{version}/stats",
            get(repository::model_stats_version),
        )
        .route("/v2/models/{name}/config", get(repository::model_config))
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{name}/load", post(repository::load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository::unload),
        )
        .route(
            "/v2/models/{name}/versions/{version}",
            get(v2::model_metadata_version),
        )
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(v2::model_ready_version),
        )
        .route("/v2/models/{name}/infer", post(v2::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(v2::infer_version),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            head_limit,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            request_id,
        ))
        .with_state(state)
}

/// Answers 431 to a request whose head (request line and headers, counted
/// as sent) is over `--max-header`: hyper's buffer only bounds it roughly.
async fn head_limit(
    axum::extract::State(state): axum::extract::State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    // The request line: method, target (origin form, as sent), version.
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let size = req
        .headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    if size > state.max_head {
        let style = if req.uri().path().starts_with("/v2") {
            Style::V2
        } else {
            Style::AzureMl
        };
        return ApiError::new(
            style,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request head is {size} bytes, over the {}-byte limit (--max-header)",
                state.max_head
            ),
        )
        .into_response();
    }
    next.run(req).await
}

async fn prometheus() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics().render(),
    )
}

async fn not_found(req: Request) -> ApiError {
    let style = if req.uri().path().starts_with("/v2") {
        Style::V2
    } else {
        Style::AzureMl
    };
    ApiError::new(
        style,
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// A request id for a request that brought none: a UUID (version 4 in
/// form) from a per-process random seed and a counter, without a system
/// call per request.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64: consecutive counters give unrelated-looking ids.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (hi, lo) = (
        mix(seed ^ n),
        mix(seed.rotate_left(17) ^ n ^ 0x9e37_79b9_7f4a_7c15),
    );
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Echoes `x-request-id` (or makes one, when the client's is missing or
/// not made of [`crate::escape::is_safe_id`]'s characters), also as Azure
/// ML's `x-ms-request-id`, with `x-ms-client-request-id` echoed; runs the
/// request inside a span that carries it, counts it, and logs it where
/// `--access-log` says.
async fn request_id(
    axum::extract::State(state): axum::extract::State<Shared>,
    mut req: Request,
    next: Next,
) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| crate::escape::is_safe_id(s));
    let id = match given {
        Some(s) => s.to_string(),
        None => new_request_id(),
    };
    let header = HeaderValue::from_str(&id).ok();
    // Azure ML's client id is echoed as its server does.
    let client_id = req
        .headers()
        .get("x-ms-client-request-id")
        .filter(|v| v.to_str().is_ok_and(crate::escape::is_safe_id))
        .cloned();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    req.extensions_mut().insert(RequestId(id));
    // The route's own template is the label; unrouted paths are `other`.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("other", MatchedPath::as_str);
    let model = route
        .contains("{name}")
        .then(|| req.uri().path().split('/').nth(3).map(str::to_string))
        .flatten();
    let started = Instant::now();
    metrics().in_flight.inc();
    let mut resp = next.run(req).instrument(span.clone()).await;
    metrics().in_flight.dec();
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status();
    // Only models that exist become label values.
    let model = if status == StatusCode::NOT_FOUND {
        ""
    } else {
        model.as_deref().unwrap_or("")
    };
    metrics()
        .requests
        .with_label_values(&[route, model, status.as_str()])
        .inc();
    metrics()
        .latency
        .with_label_values(&[route])
        .observe(seconds);
    if state.access_log.logs(SEEN.fetch_add(1, Ordering::Relaxed)) {
        // Probes (every few seconds from each kubelet and load balancer)
        // only at debug: the log is for requests.
        let probe = matches!(route, "/" | "/v2/health/live" | "/v2/health/ready");
        span.in_scope(|| {
            if probe {
                tracing::debug!(status = status.as_u16(), ms = seconds * 1e3, "request done");
            } else {
                tracing::info!(status = status.as_u16(), ms = seconds * 1e3, "request done");
            }
        });
    }
    if let Some(v) = header {
        // Azure ML's name for it, and the older one Triton and KServe use.
        resp.headers_mut().insert("x-ms-request-id", v.clone());
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(v) = client_id {
        resp.headers_mut().insert("x-ms-client-request-id", v);
    }
    resp
}

/// Reads a whole body, answering 413 past the size limit and 408 past the
/// time limit (a client trickling its body).
async fn read_body(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
    style: Style,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(
        state.body_timeout,
        read_limited(body, headers, state.max_body, style),
    )
    .await
    {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            style,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {:?}",
                state.body_timeout
            ),
        )),
    }
}

async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    style: Style,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            style,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {limit}-byte limit"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let limit_hit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if limit_hit {
            too_large()
        } else {
            ApiError::new(
                style,
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
        }
    })
}
