use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What a request can fail with, rendered in the wire shapes of API-NOTES.
#[derive(Debug)]
pub enum ApiError {
    /// The orchestra's `{"msg": "..."}`.
    Msg(StatusCode, String),
    /// Not found: `{"msg": "Not found."}`, or DRF's `{"detail": "未找到。"}` where the
    /// service speaks DRF ([`drf_shape`]).
    NotFound,
    /// A body that is not what any route reads (bad JSON, not an object, a broken form):
    /// `{"msg": ...}`, or DRF's `{"detail": "JSON parse error - ..."}` ([`drf_shape`]).
    Malformed { msg: String, drf: String },
    /// Not now: `{"msg"}` with a `Retry-After` in seconds (429 rate limits, 503 busy).
    RetryAfter(StatusCode, String, u64),
    /// Something that is not the client's fault: logged once, answered opaquely.
    Internal(String),
    /// Any JSON body with this status (the campus document's DRF shapes:
    /// `{"detail": ...}`, `{"field": ["..."]}`, `{"success": "false", ...}`).
    Body(StatusCode, serde_json::Value),
}

impl ApiError {
    /// DRF's `{"detail": ...}`.
    pub fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::Body(status, json!({ "detail": detail.into() }))
    }

    pub fn msg(status: StatusCode, msg: impl Into<String>) -> Self {
        Self::Msg(status, msg.into())
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::Msg(StatusCode::BAD_REQUEST, msg.into())
    }

    /// 400 for a field a service reads the same way in both dialects (`{"msg"}`, or DRF's
    /// `{"detail"}` through [`drf_shape`]).
    pub fn field(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        Self::Malformed {
            drf: msg.clone(),
            msg,
        }
    }

    pub fn not_found() -> Self {
        Self::NotFound
    }

    /// 503: the server is too busy to take this request now; nothing was changed.
    pub fn busy(msg: impl Into<String>) -> Self {
        Self::RetryAfter(StatusCode::SERVICE_UNAVAILABLE, msg.into(), 1)
    }

    /// 503: too many commands for one record at once; nothing was written.
    pub fn record_busy() -> Self {
        Self::busy("Too many requests for this record at once; please try again.")
    }

    /// 503: the database went away during a command, which may or may not have been made.
    pub fn command_unavailable() -> Self {
        Self::busy(
            "The database was unavailable. A change may still have been made: check before trying again.",
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Every connection is taken: a bounded wait ran out, which is no reason for a 500.
            sqlx::Error::PoolTimedOut => Self::busy("The server is busy; please try again."),
            // The database is unreachable for now (a connection lost or terminated, out of
            // descriptors): nothing was done, and a retry may well work.
            e if runtime::db::connection_lost(&e) => {
                tracing::error!(error = %e, "database unreachable");
                Self::busy("The server is busy; please try again.")
            }
            // query_canceled: the statement timeout ran out (something held it up); the
            // statement was rolled back.
            // deadlock_detected, serialization_failure: a transient conflict with another
            // transaction (an operator's, a rebuild's swap); nothing was done, a retry works.
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")) => {
                tracing::warn!(error = %d, "a read lost a lock conflict");
                Self::busy("The server is busy; please try again.")
            }
            sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => {
                Self::busy("The server is busy; please try again.")
            }
            e => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Msg(status, msg) => (status, Json(json!({ "msg": msg }))).into_response(),
            Self::Body(status, body) => (status, Json(body)).into_response(),
            Self::NotFound => {
                let mut response =
                    (StatusCode::NOT_FOUND, Json(json!({ "msg": "Not found." }))).into_response();
                response.extensions_mut().insert(Neutral::NotFound);
                response
            }
            Self::Malformed { msg, drf } => {
                let mut response =
                    (StatusCode::BAD_REQUEST, Json(json!({ "msg": msg }))).into_response();
                response.extensions_mut().insert(Neutral::Malformed(drf));
                response
            }
            Self::RetryAfter(status, msg, seconds) => (
                status,
                [(axum::http::header::RETRY_AFTER, seconds.to_string())],
                Json(json!({ "msg": msg })),
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

impl From<runtime::limits::LimitError> for ApiError {
    /// A limit reached is a 429 with `Retry-After`.
    fn from(e: runtime::limits::LimitError) -> Self {
        match e {
            runtime::limits::LimitError::Limited(limited) => Self::RetryAfter(
                StatusCode::TOO_MANY_REQUESTS,
                limited.message,
                limited.retry_after,
            ),
            runtime::limits::LimitError::Database(e) => e.into(),
        }
    }
}

impl From<runtime::personal::KeyError> for ApiError {
    /// An erased person's record is gone as far as clients can tell.
    fn from(e: runtime::personal::KeyError) -> Self {
        match e {
            runtime::personal::KeyError::Forgotten => Self::not_found(),
            runtime::personal::KeyError::Database(e) => e.into(),
        }
    }
}

/// Answers every service gives, marked on the response so that a service whose clients speak
/// another dialect can say them its way ([`drf_shape`]).
#[derive(Debug, Clone)]
enum Neutral {
    NotFound,
    Malformed(String),
}

/// Response middleware for a service written for DRF clients: the answers every service gives
/// in DRF's shapes (`{"detail": "未找到。"}`, `{"detail": "JSON parse error - ..."}`).
pub async fn drf_shape(mut response: Response) -> Response {
    match response.extensions_mut().remove::<Neutral>() {
        Some(Neutral::NotFound) => {
            ApiError::detail(StatusCode::NOT_FOUND, "未找到。").into_response()
        }
        Some(Neutral::Malformed(detail)) => {
            ApiError::detail(StatusCode::BAD_REQUEST, detail).into_response()
        }
        None => response,
    }
}
