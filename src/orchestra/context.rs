//! The orchestra context: its command buses on the runtime, the services its aggregates use,
//! and what every part of it shares.

use std::sync::Arc;

use aggregates::orchestra::absences::MemberAbsences;
use aggregates::orchestra::roster::{member_subject, Roster};
use aggregates::orchestra::{OrchestraServices, Role, Section, ServiceError};
use async_trait::async_trait;
use chrono::NaiveDate;
use projections::orchestra::roster as read;
use sqlx::PgPool;

use runtime::bus::{CommandBus, Holds};
use runtime::clock::Clock;
use runtime::wechat::AppCredentials;
use runtime::Runtime;

pub const AUDIENCE: &str = "orchestra";

/// The shapes of the aggregates' serialised states (snapshots): bump one when its fields
/// change, and its old snapshots are ignored.
const ROSTER_STATE_VERSION: i32 = 1;
const ABSENCES_STATE_VERSION: i32 = 1;

pub struct Orchestra {
    pub rt: Arc<Runtime>,
    pub roster: CommandBus<Roster>,
    pub absences: CommandBus<MemberAbsences>,
    pub credentials: AppCredentials,
    /// Whose stream each absence is in: a fact that never changes once the absence exists, so
    /// it can be remembered (bounded) instead of looked up in the read model on every decision.
    pub appliers: Appliers,
    /// What each recent caller's check found, for their next write.
    pub callers: Callers,
}

/// What a member's check found (the roster as it was then), remembered for their next write:
/// the append checks it again ([`Holds`]), so a write needs no statement of its own for it.
#[derive(Clone, PartialEq)]
pub struct Known {
    pub binding: i64,
    /// Never changes while the member is on the roster (an erasure ends their record).
    pub name: String,
    pub section: Section,
    pub role: Role,
    pub season: u64,
    pub key: Option<runtime::personal::Key>,
}

impl Known {
    pub fn of(now: read::MemberNow) -> Option<(Self, runtime::answers::ReadModels)> {
        let read::MemberNow {
            member,
            season,
            key,
            at,
        } = now;
        Some((
            Self {
                binding: member.binding?,
                section: member.section(),
                role: member.role(),
                name: member.name,
                season,
                key: key.and_then(|k| runtime::personal::Key::try_from(k.as_slice()).ok()),
            },
            at,
        ))
    }

    /// The facts the append checks: the caller's binding, role and section on the roster, the
    /// season, and their key (`orchestra_caller_holds`, migration 0020).
    pub fn holds(&self, id: i64) -> Holds {
        Holds::new(
            "orchestra_caller_holds",
            serde_json::json!({
                "id": id,
                "subject": member_subject(id as u64),
                "binding": self.binding,
                "role": self.role.as_str(),
                "section": self.section.as_str(),
                "season": self.season,
            }),
        )
    }
}

/// Facts kept in memory, bounded: at most `capacity`, the least useful going first
/// (quick_cache's S3-FIFO); the size is in `/metrics` under its name.
#[derive(Clone)]
pub struct Remembered<K, V>(Arc<quick_cache::sync::Cache<K, V>>);

impl<K, V> Remembered<K, V>
where
    K: Eq + std::hash::Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(name: &'static str, capacity: usize) -> Self {
        let cache = Arc::new(quick_cache::sync::Cache::new(capacity));
        runtime::metrics::register_cache(name, &cache);
        Self(cache)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.0.get(key)
    }

    pub fn remember(&self, key: K, value: V) {
        self.0.insert(key, value);
    }

    pub fn forget(&self, key: &K) {
        self.0.remove(key);
    }
}

/// Absence id → the applier's stream id.
pub type Appliers = Remembered<u64, String>;

/// Member id → what their last check found ([`Known`]), for their next write.
pub type Callers = Remembered<i64, Known>;

impl Orchestra {
    pub fn new(rt: Arc<Runtime>) -> Arc<Self> {
        let services: Arc<dyn OrchestraServices> = Arc::new(Services {
            pool: rt.pool.clone(),
            clock: rt.clock,
        });
        let config = &rt.config;
        Arc::new(Self {
            roster: CommandBus::on(&rt, (), ROSTER_STATE_VERSION).revoking(),
            absences: CommandBus::on(&rt, services, ABSENCES_STATE_VERSION),
            appliers: Remembered::new("orchestra_appliers", 100_000),
            callers: Remembered::new("orchestra_callers", 20_000),
            credentials: AppCredentials {
                appid: config.orchestra_appid.clone(),
                secret: config.orchestra_secret.clone(),
            },
            rt,
        })
    }
}

struct Services {
    pool: PgPool,
    clock: Clock,
}

#[async_trait]
impl OrchestraServices for Services {
    fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    async fn next_absence_id(&self) -> Result<u64, ServiceError> {
        sqlx::query_scalar::<_, i64>("SELECT nextval('absence_id_seq')")
            .fetch_one(&self.pool)
            .await
            .map(|id| id as u64)
            .map_err(|e| ServiceError(e.to_string()))
    }
}
