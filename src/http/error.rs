use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What a request can fail with, rendered in the wire shapes of API-NOTES.
#[derive(Debug)]
pub enum ApiError {
    /// The orchestra's `{"msg": "..."}`.
    Msg(StatusCode, String),
    /// Not found, in a shape both mini-programs understand.
    NotFound,
    /// Something that is not the client's fault: logged once, answered opaquely.
    Internal(String),
}

impl ApiError {
    pub fn msg(status: StatusCode, msg: impl Into<String>) -> Self {
        Self::Msg(status, msg.into())
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::Msg(StatusCode::BAD_REQUEST, msg.into())
    }

    pub fn not_found() -> Self {
        Self::NotFound
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Msg(status, msg) => (status, Json(json!({ "msg": msg }))).into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({ "msg": "Not found.", "detail": "未找到。" })),
            )
                .into_response(),
            Self::Internal(error) => {
                tracing::error!(%error, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "msg": "Internal server error." })),
                )
                    .into_response()
            }
        }
    }
}
