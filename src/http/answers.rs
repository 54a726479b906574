//! Answers every route of a kind gives, declared once for the OpenAPI document (each route
//! lists the sets it gives beside its own answers), and the retry header of writes.

use utoipa::{IntoParams, IntoResponses};

use super::schema::Message;

/// What any write with a body may also answer (safe retries, the body's size, a busy server).
#[derive(IntoResponses)]
pub enum WriteAnswers {
    /// A request with this `Idempotency-Key` is still running.
    #[response(status = 409)]
    StillRunning(#[to_schema] Message),
    /// The body is over 64 KiB.
    #[response(status = 413)]
    TooLarge(#[to_schema] Message),
    /// The `Idempotency-Key` was used for another request.
    #[response(status = 422)]
    KeyReused(#[to_schema] Message),
    /// Busy (a record with too many requests at once, the database away); `Retry-After` says
    /// when to try again. Nothing was changed, unless the message says it may have been.
    #[response(status = 503)]
    Busy(#[to_schema] Message),
}

/// What a write without a body may answer 400 for: a malformed `Idempotency-Key`.
#[derive(IntoResponses)]
pub enum BadRetryKey {
    /// The `Idempotency-Key` is not 1 to 255 visible ASCII characters.
    #[response(status = 400)]
    Malformed(#[to_schema] Message),
}

/// What any read may also answer.
#[derive(IntoResponses)]
pub enum ReadAnswers {
    /// Busy; `Retry-After` says when to try again.
    #[response(status = 503)]
    Busy(#[to_schema] Message),
}

/// A writer who sends too many writes.
#[derive(IntoResponses)]
pub enum Throttled {
    /// Too many writes (or attempts) for now; `Retry-After` says when to try again.
    #[response(status = 429)]
    TooMany(#[to_schema] Message),
}

/// The header of safe retries, on every write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RetryKey {
    /// Resending a write with the same key (and body) within 24 h returns the first answer
    /// without doing it again; the same key with another body is a 422.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}
