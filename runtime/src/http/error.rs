//! Errors as clients of each protocol expect them: `{"message": …}` on Azure
//! ML routes, `{"error": …}` on Open Inference Protocol routes, with the
//! status that names the cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backend::BackendError;
use crate::instance::InstanceError;
use crate::instance::bindings::GuestErrorCode;
use crate::instance::pool::CallError;
use crate::service::InferError;

/// Longest error message sent to a client (a module's own included).
pub const MAX_MESSAGE: usize = 8 << 10;

/// Which protocol's error body to write.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    AzureMl,
    V2,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub style: Style,
}

impl ApiError {
    /// An error with an explicit status; its message is capped at
    /// [`MAX_MESSAGE`] bytes, whoever wrote it.
    pub fn new(style: Style, status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match crate::escape::capped(&message, MAX_MESSAGE) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        ApiError {
            status,
            message,
            style,
        }
    }

    /// The service is still starting.
    pub fn not_ready(style: Style) -> Self {
        ApiError::new(
            style,
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: models and module are still loading",
        )
    }

    /// A failed call into the module.
    pub fn call(style: Style, e: CallError) -> Self {
        let status = match &e {
            CallError::Guest(g) => match g.code {
                GuestErrorCode::BadRequest => StatusCode::BAD_REQUEST,
                GuestErrorCode::NotFound => StatusCode::NOT_FOUND,
                GuestErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                GuestErrorCode::Unsupported => StatusCode::NOT_IMPLEMENTED,
                GuestErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            CallError::Timeout(_) | CallError::Instance(InstanceError::InitTimeout(_)) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            CallError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Trap(_)
            | CallError::Instance(_)
            | CallError::Invalid(_)
            | CallError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let error = ApiError::new(style, status, e.to_string());
        if status.is_server_error() {
            let text = crate::escape::log_text(&error.message);
            tracing::warn!(status = status.as_u16(), error = %text, "scoring failed");
        }
        error
    }

    /// A failed tensor request.
    pub fn infer(e: InferError) -> Self {
        match e {
            InferError::UnknownModel(_) => {
                ApiError::new(Style::V2, StatusCode::NOT_FOUND, e.to_string())
            }
            InferError::Backend(b) => {
                let status = match b {
                    BackendError::InvalidInput(_) | BackendError::Unsupported(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    BackendError::Deadline => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                ApiError::new(Style::V2, status, b.to_string())
            }
            InferError::Call(c) => ApiError::call(Style::V2, c),
            InferError::Overloaded(o) => {
                ApiError::new(Style::V2, StatusCode::SERVICE_UNAVAILABLE, o.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            Style::AzureMl => json!({ "message": self.message }),
            Style::V2 => json!({ "error": self.message }),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
