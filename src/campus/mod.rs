//! The campus context in the server: users (WeChat login, email verification, profiles,
//! follows), superusers (the CLI's `admin` commands, `adminLogIn/`, `register/`), the
//! catalogues, organisations from application to deletion, feedback, and what superusers may
//! read of the log (`/audit/...`).

mod audit;
mod auth;
mod catalog;
mod common;
mod feedback;
mod organizations;
pub mod read;
pub mod schema;
mod superusers;
mod users;

use std::sync::Arc;

use aggregates::campus::catalog::{Addresses, Blocks, Categories, Entry};
use aggregates::campus::feedback::Feedback;
use aggregates::campus::organizations::Organization;
use aggregates::campus::superusers::Superuser;
use aggregates::campus::users::CampusUser;
use utoipa_axum::router::OpenApiRouter;

pub use auth::CurrentSuperuser;
pub use organizations::withdraw_orphaned;
pub use superusers::{disable, list, register, superuser_named, RegisterError, SuperuserRow};

use crate::bus::CommandBus;
use crate::config::Config;
use crate::projector::Projector;
use crate::wechat::AppCredentials;
use crate::App;

/// The audience of campus tokens (orchestra tokens have another: neither is accepted by the
/// other's endpoints).
pub const AUDIENCE: &str = "campus";

/// The shapes of the aggregates' states (snapshots): bump one when its fields change.
const STATE_VERSION: i32 = 1;

pub struct Campus {
    pub credentials: AppCredentials,
    pub superusers: CommandBus<Superuser>,
    pub users: CommandBus<CampusUser>,
    pub organizations: CommandBus<Organization>,
    pub blocks: CommandBus<Entry<Blocks>>,
    pub categories: CommandBus<Entry<Categories>>,
    pub addresses: CommandBus<Entry<Addresses>>,
    pub feedback: CommandBus<Feedback>,
}

impl Campus {
    pub fn new(config: &Config, pool: sqlx::PgPool, projector: Arc<Projector>) -> Self {
        let waits = config.waits;
        Self {
            credentials: AppCredentials {
                appid: config.campus_appid.clone(),
                secret: config.campus_secret.clone(),
            },
            superusers: CommandBus::new(pool.clone(), (), STATE_VERSION, projector.clone(), waits),
            users: CommandBus::new(pool.clone(), (), STATE_VERSION, projector.clone(), waits),
            organizations: CommandBus::new(
                pool.clone(),
                (),
                STATE_VERSION,
                projector.clone(),
                waits,
            ),
            blocks: CommandBus::new(pool.clone(), (), STATE_VERSION, projector.clone(), waits),
            categories: CommandBus::new(pool.clone(), (), STATE_VERSION, projector.clone(), waits),
            addresses: CommandBus::new(pool.clone(), (), STATE_VERSION, projector.clone(), waits),
            feedback: CommandBus::new(pool, (), STATE_VERSION, projector, waits),
        }
    }
}

pub fn routes() -> OpenApiRouter<Arc<App>> {
    superusers::routes()
        .merge(audit::routes())
        .merge(users::routes())
        .merge(catalog::routes())
        .merge(organizations::routes())
        .merge(feedback::routes())
}

/// A moment as the campus API shows it: local time, microseconds, no offset.
pub fn local_time(app: &App, at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&app.config.tz)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}
