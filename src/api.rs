//! The one place the services meet the web: every route the public listener serves, and the
//! OpenAPI document that describes exactly those. Both come from the same registrations
//! (utoipa-axum's `routes!`), so a route cannot be served without being described
//! (tests/api/docs.rs checks both ways). `crate::http` is the plumbing around them and knows
//! no service.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::docs;
use crate::App;

pub fn routes(with_metrics: bool) -> (Router<Arc<App>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(crate::orchestra::routes())
        .merge(crate::campus::routes())
        .merge(crate::metrics::routes(with_metrics))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
        .routes(routes!(docs::docs_asset))
        .split_for_parts()
}

/// Serve both services on `listener` until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Metrics are on the public listener unless an admin listener is configured.
    let with_metrics = app.config.admin_listen.is_none();
    crate::http::serve(app, routes(with_metrics), listener, shutdown).await
}
