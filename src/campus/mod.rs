//! The campus context in the server: users (WeChat login, email verification, profiles,
//! follows), superusers (the CLI's `admin` commands, `adminLogIn/`, `register/`), the
//! catalogues, organisations from application to deletion, feedback, and what superusers may
//! read of the log (`/audit/...`). The context itself (its command buses on the runtime) is
//! here; its use cases in `service/` (shared by HTTP and the CLI), its routes in `http/`
//! (bodies in `body.rs`, field checks in `fields.rs`, callers in `auth.rs`). Its read models
//! and their queries are `projections::campus`; its rules, `aggregates::campus`.

mod auth;
pub mod body;
mod fields;
mod http;
pub mod service;

use std::sync::Arc;

use aggregates::campus::catalog::{Addresses, Blocks, Categories, Entry};
use aggregates::campus::feedback::Feedback;
use aggregates::campus::organizations::Organization;
use aggregates::campus::superusers::Superuser;
use aggregates::campus::users::CampusUser;

pub use auth::CurrentSuperuser;
pub use service::organizations::withdraw_orphaned;
pub use service::superusers::{disable, list, register, superuser_named, RegisterError};

use runtime::bus::CommandBus;
use runtime::wechat::AppCredentials;
use runtime::Runtime;

/// The audience of campus tokens (orchestra tokens have another: neither is accepted by the
/// other's endpoints).
pub const AUDIENCE: &str = "campus";

/// The shapes of the aggregates' states (snapshots): bump one when its fields change.
const STATE_VERSION: i32 = 1;

pub struct Campus {
    pub rt: Arc<Runtime>,
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
    pub fn new(rt: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            credentials: AppCredentials {
                appid: rt.config.campus_appid.clone(),
                secret: rt.config.campus_secret.clone(),
            },
            superusers: CommandBus::on(&rt, (), STATE_VERSION),
            users: CommandBus::on(&rt, (), STATE_VERSION),
            organizations: CommandBus::on(&rt, (), STATE_VERSION),
            blocks: CommandBus::on(&rt, (), STATE_VERSION),
            categories: CommandBus::on(&rt, (), STATE_VERSION),
            addresses: CommandBus::on(&rt, (), STATE_VERSION),
            feedback: CommandBus::on(&rt, (), STATE_VERSION),
            rt,
        })
    }

    /// What the campus needs done in the background: a deleted user's pending applications
    /// withdrawn when the request or process that deleted them died after the commit
    /// (idempotent; usually finds nothing).
    pub fn background(self: &Arc<Self>) -> Vec<runtime::worker::Periodic> {
        let campus = self.clone();
        vec![runtime::worker::Periodic {
            name: "campus-sweeper",
            every: SWEEP_EVERY,
            round: Arc::new(move || {
                let campus = campus.clone();
                Box::pin(async move {
                    withdraw_orphaned(&campus, None).await;
                })
            }),
        }]
    }
}

/// How often the campus sweeper looks for work.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub use http::routes;

/// The first segments of the campus document's paths (and of the superusers' `/audit/`):
/// an unknown path among them is answered in DRF's shape.
const PREFIXES: &[&str] = &[
    "users",
    "blocks",
    "organizations",
    "activities",
    "login",
    "userLogin",
    "sendVerify",
    "verify",
    "register",
    "adminLogIn",
    "feedbacks",
    "audit",
];

/// Whether `path` lies among the campus's paths.
pub fn owns(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    PREFIXES.contains(&first)
}

/// A moment as the campus API shows it: local time, microseconds, no offset.
pub fn local_time(app: &Campus, at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&app.rt.config.tz)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}
