//! The one place the services meet the web: every route the public listener serves, and the
//! OpenAPI document that describes exactly those. Both come from the same registrations
//! (utoipa-axum's `routes!`), so a route cannot be served without being described
//! (tests/api/docs.rs checks both ways). Each context's routes run on its own state and speak
//! its clients' dialect; `crate::http` is the plumbing around them and knows no context.

use std::future::Future;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::Arc;

use crate::app::App;
use crate::http::{docs, drf_shape, ApiError};
use crate::views::Views;

/// The public listener's routes and their document: the services', and the console
/// (`/console/`); `/metrics` among them unless an admin listener serves it.
pub fn routes(app: &Arc<App>) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut document) = service_routes(app);
    let (console, console_doc) = crate::console::routes().split_for_parts();
    document.merge(console_doc);
    let console = console
        .layer(axum::middleware::from_fn(crate::console::same_origin))
        .with_state(crate::console::Console::new(app.clone(), services));
    // The console's headers on everything under /console, unknown paths included.
    let router = router
        .merge(console)
        .layer(axum::middleware::from_fn(crate::console::secured));
    (router, document)
}

/// Every route but the console's, and their document.
fn service_routes(app: &Arc<App>) -> (Router, utoipa::openapi::OpenApi) {
    let with_metrics = app.rt.config.admin_listen.is_none();
    let (orchestra, mut document) = crate::orchestra::routes().split_for_parts();
    let (campus, campus_doc) = crate::campus::routes().split_for_parts();
    let (views, views_doc) = crate::views::routes().split_for_parts();
    let (operations, operations_doc) = crate::http::health::routes(with_metrics)
        .merge(crate::http::subscriptions::routes())
        .split_for_parts();
    let (pages, pages_doc) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
        .routes(routes!(docs::docs_asset))
        .split_for_parts();
    let mut pages_doc = pages_doc;
    for part in [
        std::mem::take(&mut document),
        campus_doc,
        views_doc,
        operations_doc,
    ] {
        pages_doc.merge(part);
    }
    document = pages_doc;
    // GETs of the services to a standby where one can answer; the log position on every
    // answer of theirs (inside the campus's DRF shapes: a bad position header is a 400 there).
    let reads = axum::middleware::from_fn_with_state(reads(app), crate::http::reads::dispatch);
    let router = pages
        .merge(
            orchestra
                .with_state(app.orchestra.clone())
                .layer(reads.clone()),
        )
        .merge(
            campus
                .with_state(app.campus.clone())
                .layer(reads)
                .layer(axum::middleware::map_response(drf_shape)),
        )
        .merge(
            views
                .layer(axum::middleware::map_response(drf_shape))
                .with_state(Arc::new(Views {
                    app: app.clone(),
                    services,
                })),
        )
        .merge(operations.with_state(app.rt.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    (router, document)
}

/// What reads need: the services' routes on each standby of `app` (whose runtimes read the
/// standby; they have no standbys of their own, so this ends there).
fn reads(app: &Arc<App>) -> crate::http::reads::Reads {
    let replicas = app.rt.replicas.clone();
    let routers = (0..replicas.len())
        .map(|i| services(&App::on(Arc::new(app.rt.reading(i)))))
        .collect();
    crate::http::reads::Reads {
        replicas,
        projector: app.rt.projector.clone(),
        routers: Arc::new(routers),
        standby_may: |path| !path.starts_with("/audit"),
    }
}

/// The services' routes of `app` (what the time machine asks): no console, whose state (its
/// jobs, its lag sampler) belongs to the listener's router alone.
pub fn services(app: &Arc<App>) -> Router {
    service_routes(app).0
}

/// Whether a request's caller is still admitted, by the checks of the context its path
/// belongs to (before a kept answer is replayed to them).
fn admits(app: &Arc<App>) -> crate::http::idempotency::Admits {
    use axum::extract::FromRequestParts;
    let app = app.clone();
    Arc::new(move |mut parts| {
        let app = app.clone();
        Box::pin(async move {
            // Checked as a read: the check is not another write (the campus counts writes).
            parts.method = axum::http::Method::GET;
            if crate::campus::owns(parts.uri.path()) {
                crate::campus::Caller::from_request_parts(&mut parts, &app.campus)
                    .await
                    .map(|_| ())
                    .map_err(IntoResponse::into_response)
            } else {
                crate::orchestra::CurrentMember::from_request_parts(&mut parts, &app.orchestra)
                    .await
                    .map(|_| ())
                    .map_err(IntoResponse::into_response)
            }
        })
    })
}

/// An unknown path, answered in the dialect of the service whose paths it lies among (the
/// orchestra's `{"msg"}` for any other).
async fn not_found(uri: Uri) -> Response {
    let response = ApiError::not_found().into_response();
    if crate::campus::owns(uri.path()) {
        drf_shape(response).await
    } else {
        response
    }
}

/// A method a path does not take, in the dialect of its service (DRF's words on the campus).
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    if crate::campus::owns(uri.path()) {
        ApiError::detail(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("方法 “{method}” 不被允许。"),
        )
    } else {
        ApiError::Msg(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.".into())
    }
}

/// Serve both services on `listener` until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http::serve(
        app.rt.clone(),
        routes(&app),
        admits(&app),
        listener,
        shutdown,
    )
    .await
}
