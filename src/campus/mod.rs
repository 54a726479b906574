//! The campus context in the server. So far: superusers (the CLI's `admin` commands,
//! `POST /adminLogIn/`, `POST /register/`) and what they may read (`/audit/...`,
//! `src/campus/audit.rs`).

mod audit;
mod auth;
mod superusers;

use std::sync::Arc;

use aggregates::campus::superusers::Superuser;
use utoipa_axum::router::OpenApiRouter;

pub use auth::CurrentSuperuser;
pub use superusers::{disable, list, register, superuser_named, RegisterError, SuperuserRow};

use crate::bus::CommandBus;
use crate::config::Config;
use crate::projector::Projector;
use crate::App;

/// The audience of campus tokens (orchestra tokens have another: neither is accepted by the
/// other's endpoints).
pub const AUDIENCE: &str = "campus";

/// Superusers' state shape (snapshots).
const SUPERUSER_STATE_VERSION: i32 = 1;

pub struct Campus {
    pub superusers: CommandBus<Superuser>,
}

impl Campus {
    pub fn new(config: &Config, pool: sqlx::PgPool, projector: Arc<Projector>) -> Self {
        Self {
            superusers: CommandBus::new(pool, (), SUPERUSER_STATE_VERSION, projector, config.waits),
        }
    }
}

pub fn routes() -> OpenApiRouter<Arc<App>> {
    superusers::routes().merge(audit::routes())
}
