//! Triton's extensions of the V2 REST API that clients call beside infer:
//! model statistics, model configuration and the repository index, in
//! Triton's JSON shapes (what `tritonclient`'s `get_inference_statistics`,
//! `get_model_config` and `get_model_repository_index` read).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, Style};
use crate::service::ModelStats;

fn stats_json(s: &ModelStats) -> Value {
    let pair = |(count, ns): (u64, u64)| json!({ "count": count, "ns": ns });
    let none = json!({ "count": 0, "ns": 0 });
    json!({
        "name": s.name,
        "version": s.version,
        "last_inference": s.last_inference_ms,
        "inference_count": s.success.0,
        "execution_count": s.executions,
        "inference_stats": {
            "success": pair(s.success),
            "fail": pair(s.fail),
            "queue": pair(s.queue),
            "compute_input": { "count": s.success.0, "ns": 0 },
            "compute_infer": pair(s.compute),
            "compute_output": { "count": s.success.0, "ns": 0 },
            "cache_hit": none,
            "cache_miss": none,
        },
        "batch_stats": s.batches.iter().map(|&(size, count, ns)| json!({
            "batch_size": size,
            "compute_input": { "count": count, "ns": 0 },
            "compute_infer": { "count": count, "ns": ns },
            "compute_output": { "count": count, "ns": 0 },
        })).collect::<Vec<_>>(),
    })
}

fn stats_of(
    state: &AppState,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => service.model_names(),
    };
    let stats = names
        .iter()
        .map(|n| service.stats(n, version).map(|s| stats_json(&s)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::service(Style::V2, e))?;
    Ok(Json(json!({ "model_stats": stats })))
}

/// `GET /v2/models/stats`: every model's statistics.
pub async fn all_stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    stats_of(&state, None, None)
}

/// `GET /v2/models/{name}/stats`.
pub async fn model_stats(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    stats_of(&state, Some(&name), None)
}

/// `GET /v2/models/{name}/versions/{version}/stats`.
pub async fn model_stats_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    stats_of(&state, Some(&name), Some(&version))
}

/// `GET /v2/models/{name}/config`: the model's configuration in Triton's
/// terms (its `config.pbtxt`, completed from the model).
pub async fn model_config(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    service
        .model_config_json(&name, None)
        .map(Json)
        .map_err(|e| ApiError::service(Style::V2, e))
}

/// `POST /v2/repository/index`: every model version served (`READY`),
/// and the repository's models that are not, with why.
pub async fn index(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    let models: Vec<Value> = service
        .index()
        .into_iter()
        .map(|m| {
            let mut line = json!({ "name": m.name, "state": m.state });
            if !m.version.is_empty() {
                line["version"] = json!(m.version);
            }
            if !m.reason.is_empty() {
                line["reason"] = json!(m.reason);
            }
            line
        })
        .collect();
    Ok(Json(Value::Array(models)))
}

/// `POST /v2/repository/models/{name}/load`: loads (or reloads) the model
/// from the repository (`--model-control-mode explicit`).
pub async fn load(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    service
        .load_model(&name)
        .await
        .map_err(|e| ApiError::service(Style::V2, e))?;
    Ok(Json(json!({})))
}

/// `POST /v2/repository/models/{name}/unload`: stops serving the model;
/// requests already running on it finish.
pub async fn unload(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.ready(Style::V2)?;
    service
        .unload_model(&name)
        .map_err(|e| ApiError::service(Style::V2, e))?;
    Ok(Json(json!({})))
}
