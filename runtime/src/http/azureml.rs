//! Azure ML's inference-server routes: `GET /` (liveness), `/score` (the
//! module's `score`, i.e. `run()`), `/swagger.json`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Style};
use super::{AppState, RequestId, read_body};
use crate::codec::query::query_to_json;
use crate::service::ScoreRequest;

/// `GET /`: the server process is up.
pub async fn health() -> &'static str {
    "Healthy"
}

/// `GET /swagger.json`.
pub async fn swagger(State(state): State<Arc<AppState>>) -> Response {
    let service = state.service.get().map(Arc::as_ref);
    Json(super::openapi::document(&state.openapi, service)).into_response()
}

/// `GET /score?…`: the query as a JSON object, as Azure ML passes it.
pub async fn score_get(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let body = query_to_json(&query).to_string().into_bytes();
    let request = ScoreRequest {
        body,
        content_type: "application/json".into(),
        headers: text_headers(&headers),
        method: "GET",
        query,
    };
    score(&state, id, request).await
}

/// `POST /score`: the body as sent.
pub async fn score_post(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.ready(Style::AzureMl)?;
    let body = read_body(&state, body, &headers, Style::AzureMl).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let request = ScoreRequest {
        body: body.to_vec(),
        content_type,
        headers: text_headers(&headers),
        method: "POST",
        query: String::new(),
    };
    score(&state, id, request).await
}

/// The headers with text values, as the module sees them.
fn text_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

async fn score(state: &AppState, id: String, request: ScoreRequest) -> Result<Response, ApiError> {
    let service = state.ready(Style::AzureMl)?;
    let answer = service
        .score(request, id)
        .await
        .map_err(|e| ApiError::service(Style::AzureMl, e))?;
    // Only the statuses HTTP defines classes for, and none of 1xx.
    let status = StatusCode::from_u16(answer.status)
        .ok()
        .filter(|s| (200..600).contains(&s.as_u16()))
        .ok_or_else(|| {
            ApiError::new(
                Style::AzureMl,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the scoring module returned invalid HTTP status {} (200-599 are allowed)",
                    answer.status
                ),
            )
        })?;
    let content_type = HeaderValue::from_str(&answer.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok((status, [(header::CONTENT_TYPE, content_type)], answer.body).into_response())
}
