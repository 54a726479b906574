//! The REST surface: one router per bounded context, JSON everywhere, paths with or without
//! the trailing slash.

mod error;
mod input;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::Router;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use input::{parse_date, parse_id, Input, Segment, MAX_BODY_BYTES};

use crate::App;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(crate::orchestra::routes())
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::Msg(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.".into())
        })
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // One span per request (method, path, request id); one line per response with its
        // status and latency. Headers are not logged: they carry tokens.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(app)
}

/// Serve until `shutdown` completes, then finish the requests in flight.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = NormalizePathLayer::trim_trailing_slash().layer(router(app));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
