//! The campus context in the server: users (WeChat login, email verification, profiles,
//! follows), superusers (the CLI's `admin` commands, `adminLogIn/`, `register/`), the
//! catalogues, organisations from application to deletion, feedback, and what superusers may
//! read of the log (`/audit/...`). The context itself (its command buses on the runtime) is
//! here; its use cases in `service/` (shared by HTTP and the CLI), its routes in `http/`
//! (bodies in `body.rs`, field checks in `fields.rs`, callers in `auth.rs`). Its read models
//! and their queries are `projections::campus`; its rules, `aggregates::campus`.

mod auth;
pub mod body;
mod context;
mod fields;
mod http;
pub mod service;

pub use auth::{superuser_token_then, token_as, As, Caller, CurrentSuperuser, Permitted};
pub use context::{local_time, owns, Campus, AUDIENCE};
pub use http::routes;
pub use service::organizations::{sweeper, withdraw_orphaned};
pub use service::superusers::{disable, list, register, superuser_named, RegisterError};
