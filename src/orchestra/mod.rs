//! The orchestra context in the server: the context itself (its command buses on the
//! runtime), its use cases (`service.rs`, shared by HTTP and the CLI), its routes (`http.rs`,
//! with the bodies in `body.rs` and the callers in `auth.rs`). Its read models and their
//! queries are `projections::orchestra`; its rules, `aggregates::orchestra`.

mod auth;
pub mod body;
mod context;
mod http;
pub mod service;

pub use auth::{token_as, CurrentMember};
pub use context::{Appliers, Orchestra, AUDIENCE};
pub use http::routes;
