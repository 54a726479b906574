//! The API described (`GET /openapi.json`, OpenAPI 3.1, generated from the handlers' own
//! annotations) and rendered (`GET /docs/`: Swagger UI, its assets inside the binary).

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ensemble",
        description = "The backend of the orchestra and campus mini-programs.\n\n\
            Every path also answers with a trailing slash (`/absence/`), as the clients call it. \
            Bodies are JSON or `application/x-www-form-urlencoded`. The orchestra's errors are \
            `{\"msg\": \"...\"}`; the campus's are DRF's: `{\"detail\": \"...\"}` (401, 403, 404, \
            malformed bodies) and `{\"field\": [\"...\"]}` (every wrong field at once). Writes \
            accept an `Idempotency-Key` header: the same key and body within 24 hours return the \
            first answer without doing it again.",
    ),
    modifiers(&Security),
    tags(
        (name = "orchestra", description = "Members' absences and managers' decisions"),
        (name = "campus", description = "Users, email verification, organisations from application to deletion, owners, managers, followers, the catalogues, feedback, superusers"),
        (name = "audit", description = "The event history, for campus superusers"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "console", description = "The browser console for auditors and operators (HTML pages, campus superusers)"),
        (name = "subscriptions", description = "The log followed by outside systems, with tokens an operator creates"),
    )
)]
pub struct ApiDoc;

/// `Authorization: JWT <token>` (or `Bearer <token>`), from `POST /account/login`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "jwt",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`JWT <token>` (or `Bearer <token>`): the token of `POST /account/login` (orchestra), `POST /login` or `POST /adminLogIn` (campus)",
                ))),
            );
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "subscription",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`Bearer <token>`: a subscription's token, shown once by `ensemble subscriptions create`",
                ))),
            );
    }
}

/// The document as served.
#[derive(Clone)]
pub struct Served(pub Arc<String>);

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Served>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/docs", tag = "operations",
    summary = "The document, rendered for people (Swagger UI)",
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn docs_page() -> Response {
    swagger_file("index.html")
}

#[utoipa::path(get, path = "/docs/{file}", tag = "operations",
    summary = "The page's assets",
    params(("file" = String, Path, description = "e.g. swagger-ui.css")),
    responses(
        (status = 200, description = "The asset"),
        (status = 404, description = "No such asset", body = crate::http::schema::NotFound),
    ))]
pub async fn docs_asset(super::Segment(file): super::Segment) -> Response {
    swagger_file(&file)
}

fn swagger_file(file: &str) -> Response {
    let config = Arc::new(
        utoipa_swagger_ui::Config::new(["/openapi.json"])
            .try_it_out_enabled(true)
            .display_request_duration(true),
    );
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(found)) => {
            let mut bytes = found.bytes.into_owned();
            if file == "index.html" {
                // The page is served at /docs and /docs/ alike (paths lose their trailing
                // slash here): its relative asset links must resolve under /docs/ either way.
                let page = String::from_utf8_lossy(&bytes).replacen(
                    "<head>",
                    "<head><base href=\"/docs/\">",
                    1,
                );
                bytes = page.into_bytes();
            }
            ([(header::CONTENT_TYPE, found.content_type)], bytes).into_response()
        }
        Ok(None) => super::ApiError::not_found().into_response(),
        Err(e) => {
            tracing::error!(error = %e, "swagger-ui asset failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
