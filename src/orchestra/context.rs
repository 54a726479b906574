//! The orchestra context: its command buses on the runtime, the services its aggregates use,
//! and what every part of it shares.

use std::sync::Arc;

use aggregates::orchestra::absences::MemberAbsences;
use aggregates::orchestra::roster::Roster;
use aggregates::orchestra::{OrchestraServices, ServiceError};
use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::PgPool;

use runtime::bus::CommandBus;
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
}

/// Absence id → the applier's stream id, remembered: at most [`APPLIERS_REMEMBERED`], the
/// least useful going first (quick_cache's S3-FIFO); the size is in `/metrics`.
#[derive(Clone)]
pub struct Appliers(Arc<quick_cache::sync::Cache<u64, String>>);

const APPLIERS_REMEMBERED: usize = 100_000;

impl Default for Appliers {
    fn default() -> Self {
        let cache = Arc::new(quick_cache::sync::Cache::new(APPLIERS_REMEMBERED));
        runtime::metrics::register_cache("orchestra_appliers", &cache);
        Self(cache)
    }
}

impl Appliers {
    pub fn get(&self, absence_id: u64) -> Option<String> {
        self.0.get(&absence_id)
    }

    pub fn remember(&self, absence_id: u64, applier: &str) {
        self.0.insert(absence_id, applier.to_string());
    }
}

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
            appliers: Appliers::default(),
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
