//! Reads answered from the answers kept between reads (`runtime::answers`): the handler says
//! what the answer depends on, and builds it only when no answer is kept for that.

use std::future::Future;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use runtime::answers::Question;
use runtime::Runtime;
use serde::Serialize;

use super::ApiError;

/// The JSON answer to `question`: the one kept for it, or the one `build` makes (then kept).
pub async fn json<T, F>(rt: &Runtime, question: Question, build: F) -> Result<Response, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<T, ApiError>>,
{
    let body = rt
        .answers
        .get_or_build(question, async {
            let value = build.await?;
            serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(ApiError::internal)
        })
        .await?;
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}
