//! The campus context: its command buses on the runtime, and what every part of it shares.

use std::sync::Arc;

use aggregates::campus::catalog::{Addresses, Blocks, Categories, Entry};
use aggregates::campus::feedback::Feedback;
use aggregates::campus::organizations::Organization;
use aggregates::campus::superusers::Superuser;
use aggregates::campus::users::CampusUser;

use runtime::bus::CommandBus;
use runtime::wechat::AppCredentials;
use runtime::Runtime;

/// The audience of campus tokens (orchestra tokens have another: neither is accepted by the
/// other's endpoints).
pub const AUDIENCE: &str = "campus";

/// The shapes of the aggregates' states (snapshots): bump one when its fields change (or
/// what they hold: 2, an organisation keeps the description it was founded with).
const STATE_VERSION: i32 = 2;

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
            superusers: CommandBus::on(&rt, (), STATE_VERSION).revoking(),
            users: CommandBus::on(&rt, (), STATE_VERSION),
            organizations: CommandBus::on(&rt, (), STATE_VERSION),
            blocks: CommandBus::on(&rt, (), STATE_VERSION),
            categories: CommandBus::on(&rt, (), STATE_VERSION),
            addresses: CommandBus::on(&rt, (), STATE_VERSION),
            feedback: CommandBus::on(&rt, (), STATE_VERSION),
            rt,
        })
    }
}

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
