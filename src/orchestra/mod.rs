//! The orchestra context in the server: command buses, the read-model queries, the routes.

mod auth;
pub mod bindings;
pub mod read;
mod routes;
pub mod schema;

use std::sync::Arc;

use aggregates::orchestra::absences::MemberAbsences;
use aggregates::orchestra::roster::Roster;
use aggregates::orchestra::{OrchestraServices, ServiceError};
use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::PgPool;

pub use auth::CurrentMember;
pub use routes::routes;

use crate::bus::CommandBus;
use crate::clock::Clock;
use crate::config::Config;
use crate::projector::Projector;
use crate::wechat::AppCredentials;

pub const AUDIENCE: &str = "orchestra";

/// The shapes of the aggregates' serialised states (snapshots): bump one when its fields
/// change, and its old snapshots are ignored.
const ROSTER_STATE_VERSION: i32 = 1;
const ABSENCES_STATE_VERSION: i32 = 1;

pub struct Orchestra {
    pub roster: CommandBus<Roster>,
    pub absences: CommandBus<MemberAbsences>,
    pub credentials: AppCredentials,
    /// Whose stream each absence is in: a fact that never changes once the absence exists, so
    /// it can be remembered (bounded) instead of looked up in the read model on every decision.
    pub appliers: Appliers,
}

/// Absence id → the applier's stream id, remembered.
#[derive(Default)]
pub struct Appliers(std::sync::Mutex<std::collections::HashMap<u64, String>>);

const APPLIERS_REMEMBERED: usize = 100_000;

impl Appliers {
    pub fn get(&self, absence_id: u64) -> Option<String> {
        self.0.lock().unwrap().get(&absence_id).cloned()
    }

    pub fn remember(&self, absence_id: u64, applier: &str) {
        let mut map = self.0.lock().unwrap();
        if map.len() >= APPLIERS_REMEMBERED {
            map.clear();
        }
        map.insert(absence_id, applier.to_string());
    }
}

impl Orchestra {
    pub fn new(config: &Config, pool: PgPool, clock: Clock, projector: Arc<Projector>) -> Self {
        let services: Arc<dyn OrchestraServices> = Arc::new(Services {
            pool: pool.clone(),
            clock,
        });
        Self {
            roster: CommandBus::new(
                pool.clone(),
                (),
                ROSTER_STATE_VERSION,
                projector.clone(),
                config.waits,
            ),
            absences: CommandBus::new(
                pool,
                services,
                ABSENCES_STATE_VERSION,
                projector,
                config.waits,
            ),
            appliers: Appliers::default(),
            credentials: AppCredentials {
                appid: config.orchestra_appid.clone(),
                secret: config.orchestra_secret.clone(),
            },
        }
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
