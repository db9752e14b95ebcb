//! Open Inference Protocol V2 REST routes (KServe, Triton): server and model
//! metadata, health, and `infer` with JSON tensors.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, Style};
use super::{AppState, RequestId, read_body};
use crate::codec::v2::{EncodeError, decode_request_with, encode_response};
use crate::service::InferRequest;

/// `GET /v2`.
pub async fn server_metadata() -> Json<Value> {
    Json(
        json!({ "name": "sandscore", "version": crate::VERSION, "extensions": crate::service::EXTENSIONS }),
    )
}

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    state.ready(Style::V2)?;
    Ok(Json(json!({ "ready": true })))
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    let m = service
        .model(name, version)
        .map_err(|e| ApiError::service(Style::V2, e))?;
    Ok(Json(json!({
        "name": m.name,
        "versions": m.versions,
        "platform": m.platform,
        "inputs": m.inputs,
        "outputs": m.outputs,
    })))
}

/// `GET /v2/models/{name}`.
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, None)
}

/// `GET /v2/models/{name}/versions/{version}`.
pub async fn model_metadata_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, Some(&version))
}

fn model_is_ready(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    let m = service
        .model(name, version)
        .map_err(|e| ApiError::service(Style::V2, e))?;
    Ok(Json(json!({ "name": m.name, "ready": true })))
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    model_is_ready(&state, &name, None)
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
pub async fn model_ready_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    model_is_ready(&state, &name, Some(&version))
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    run(&state, id, name, None, headers, body).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
pub async fn infer_version(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    run(&state, id, name, Some(version), headers, body).await
}

async fn run(
    state: &AppState,
    request_id: String,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let service = state.ready(Style::V2)?;
    // An unknown model (or version) is 404 before the body is read.
    service
        .check_model(&name, version.as_deref())
        .map_err(|e| ApiError::service(Style::V2, e))?;
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        // JSON, or the binary extension's octet-stream (kserve's REST client).
        let essence = ct.split(';').next().unwrap_or("").trim();
        let known = ["application/json", "application/octet-stream"];
        if !known.iter().any(|k| essence.eq_ignore_ascii_case(k)) {
            return Err(ApiError::new(
                Style::V2,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type '{ct}' is not supported; send application/json, or application/octet-stream with Inference-Header-Content-Length (binary tensor data)"
                ),
            ));
        }
    }
    let header_len = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        Style::V2,
                        StatusCode::BAD_REQUEST,
                        format!("{HEADER_LENGTH} is not a byte count"),
                    )
                })?,
        ),
    };
    let body = read_body(state, body, &headers, Style::V2).await?;
    // Decoding and encoding are linear but not free: large ones run where
    // they cannot hold up the async runtime (health checks, other clients).
    let request = off_runtime(body.len(), move || decode_request_with(&body, header_len))
        .await?
        .map_err(|e| ApiError::new(Style::V2, StatusCode::BAD_REQUEST, e.to_string()))?;
    let answer = service
        .infer(
            InferRequest {
                model: name.clone(),
                version,
                inputs: request.inputs,
            },
            request_id,
        )
        .await
        .map_err(|e| ApiError::service(Style::V2, e))?;
    let (outputs, model_version) = (answer.outputs, answer.model_version);
    let max = service.max_response_bytes();
    let size = outputs.iter().map(|o| o.tensor.data.len()).sum();
    let encoded = off_runtime(size, move || {
        encode_response(
            &name,
            model_version.as_deref(),
            request.id.as_deref(),
            &outputs,
            request.outputs.as_deref(),
            request.binary_outputs,
            max,
        )
    })
    .await?
    .map_err(|e| {
        let status = match e {
            EncodeError::NoSuchOutput { .. } | EncodeError::NotText(_) => StatusCode::BAD_REQUEST,
            EncodeError::TooLarge(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(Style::V2, status, e.to_string())
    })?;
    Ok(match encoded.header_len {
        None => ([(header::CONTENT_TYPE, "application/json")], encoded.body).into_response(),
        Some(n) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (HeaderName::from_static(HEADER_LENGTH), n.to_string()),
            ],
            encoded.body,
        )
            .into_response(),
    })
}

/// The binary tensor data extension's header: the JSON part's length.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// Bytes of input past which codec work leaves the async threads.
const INLINE_CODEC_BYTES: usize = 64 << 10;

async fn off_runtime<R: Send + 'static>(
    size: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    if size <= INLINE_CODEC_BYTES {
        return Ok(f());
    }
    crate::blocking::run(f)
        .await
        .map_err(|e| ApiError::new(Style::V2, StatusCode::INTERNAL_SERVER_ERROR, e))
}
