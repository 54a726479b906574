//! Shapes every service's OpenAPI description uses (`GET /openapi.json`); each service keeps
//! its own beside its routes. These types exist for the document only.

use serde::Serialize;
use utoipa::ToSchema;

/// Every error, and some answers: `{"msg": "..."}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "reason is required."}))]
pub struct Message {
    pub msg: String,
}

/// A record that is not there (or not the caller's), in the orchestra's dialect (the campus
/// answers `{"detail": "未找到。"}`, its own `NotFound`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "Not found."}))]
pub struct NotFound {
    pub msg: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "not ready", "reason": "read model orchestra_absences is 1001+ events behind the log (at most 1000 allowed)"}))]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    /// Why not, when not.
    pub reason: Option<String>,
}
