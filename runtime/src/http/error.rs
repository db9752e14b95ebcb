//! Errors as clients of each protocol expect them: `{"message": …}` on Azure
//! ML routes, `{"error": …}` on Open Inference Protocol routes, with the
//! status that names the cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::{ErrorKind, ServiceError};

/// Longest error message sent to a client (a module's own included).
pub const MAX_MESSAGE: usize = 8 << 10;

/// Which protocol's error body to write.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Azure ML routes: `{"message": …}`.
    AzureMl,
    /// Open Inference Protocol (v2) routes: `{"error": …}`.
    V2,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status sent.
    pub status: StatusCode,
    /// The message for the client, capped at [`MAX_MESSAGE`] bytes.
    pub message: String,
    /// Which protocol's body to write it in.
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

    /// A failed request, with the status its kind has in HTTP; server
    /// errors are logged.
    pub fn service(style: Style, e: ServiceError) -> Self {
        let status = match e.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let error = ApiError::new(style, status, e.message);
        if status.is_server_error() {
            let text = crate::escape::log_text(&error.message);
            tracing::warn!(status = status.as_u16(), error = %text, "scoring failed");
        }
        error
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
