//! [`Runtime`]: what a process holds of the lower floors, and how it starts.

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Config;
use crate::jwt::Jwt;
use crate::projector::Projector;
use crate::runner::{Projection, Projections};
use crate::wechat::WechatClient;
use crate::{answers, db, limits, personal, replicas, views};

/// What every request, CLI command and background task of a process shares.
pub struct Runtime {
    pub config: Config,
    /// For statements (reads, appends): no transaction is ever begun on it (`db.rs`).
    pub pool: PgPool,
    /// For transactions: the projector's passes, rebuilds.
    pub tx_pool: PgPool,
    /// For health checks and metrics.
    pub probe_pool: PgPool,
    pub clock: Clock,
    pub jwt: Jwt,
    pub wechat: WechatClient,
    pub projections: Projections,
    /// Applies the log to the read models; commands wait on it.
    pub projector: Arc<Projector>,
    /// Personal data: sealing, opening, reservations.
    pub keys: Arc<personal::KeyRing>,
    pub limits: limits::Limits,
    /// The time machine's replays of the read models at past moments.
    pub views: Arc<views::Replays>,
    /// Hot standbys that serve reads (none unless `ENSEMBLE_READ_DATABASE_URL` names some).
    pub replicas: Arc<replicas::Replicas>,
    /// Read answers kept between reads, under the state of the read models they came from.
    pub answers: answers::Answers,
}

impl Runtime {
    /// Connect (creating the database if missing), migrate, and catch `projections` up with
    /// the log: whatever a previous process committed but did not project is projected now.
    pub async fn start(
        config: Config,
        projections: Vec<Box<dyn Projection>>,
    ) -> anyhow::Result<Arc<Self>> {
        db::create_database(&config.database_url).await?;
        db::migrate(&config.database_url).await?;
        // A statement may take as long as a command may wait for its turn: the request's own
        // deadline (longer) then never hides a statement that is still running.
        let pool = db::pool(&config.database_url, config.pool_size, config.waits.turn).await?;
        let tx_pool = db::transaction_pool(&config.database_url, db::TX_POOL_SIZE).await?;
        let probe_pool = db::probe_pool(&config.database_url).await?;
        let clock = Clock::new(config.tz, config.today);
        let jwt = match &config.jwt_secret {
            Some(secret) => Jwt::new(secret.as_bytes()),
            None => Jwt::random(),
        };
        let projections: Projections = Arc::new(projections);
        let projector = Projector::new(tx_pool.clone(), projections.clone());
        let keys = Arc::new(personal::KeyRing::new(pool.clone()).await?);
        let views = Arc::new(views::Replays::new(
            tx_pool.clone(),
            &config.database_url,
            projections.clone(),
            projector.clone(),
            config.view_replays,
            std::time::Duration::from_secs(20),
            config.waits.turn,
        ));
        let replicas = Arc::new(replicas::Replicas::new(
            &config,
            probe_pool.clone(),
            projections.clone(),
        )?);
        let runtime = Self {
            answers: answers::Answers::new(config.answer_cache_bytes),
            replicas,
            views,
            keys,
            limits: limits::Limits::new(pool.clone(), &config),
            wechat: WechatClient::new(&config.wechat_api),
            config,
            pool,
            tx_pool,
            probe_pool,
            clock,
            jwt,
            projections,
            projector,
        };
        // One pass: what another process (or a rebuild) is applying right now is left to it.
        runtime.projector.pass().await?;
        Ok(Arc::new(runtime))
    }

    /// This process's runtime, reading the read models of `view` (a replay of a past moment)
    /// with "today" pinned to `today`: what the same code answered then. Only for reading:
    /// the view's connections are read-only.
    pub fn viewing(&self, view: &views::View, today: chrono::NaiveDate) -> Self {
        self.reading_from(view.pool.clone(), Clock::new(self.config.tz, Some(today)))
    }

    /// This process's runtime, reading the read models of standby `i` (a hot standby of the
    /// primary). Only for reading: the standby refuses writes. Personal data is still opened
    /// with the primary's keys, so an erasure reaches what a standby serves at once.
    pub fn reading(&self, i: usize) -> Self {
        let mut standby = self.reading_from(self.replicas.pool(i).clone(), self.clock);
        standby.answers = self.answers.for_source(i as u64 + 1);
        standby
    }

    fn reading_from(&self, pool: PgPool, clock: Clock) -> Self {
        Self {
            config: self.config.clone(),
            pool,
            tx_pool: self.tx_pool.clone(),
            probe_pool: self.probe_pool.clone(),
            clock,
            jwt: self.jwt.clone(),
            wechat: self.wechat.clone(),
            projections: self.projections.clone(),
            projector: self.projector.clone(),
            keys: self.keys.clone(),
            limits: self.limits.clone(),
            views: self.views.clone(),
            replicas: Arc::new(replicas::Replicas::none(self.projections.clone())),
            // Nothing kept (a replay of the time machine is asked once in a while); a standby's
            // runtime shares the primary's cache ([`Runtime::reading`]).
            answers: answers::Answers::off(),
        }
    }

    /// Apply everything committed so far, waiting for whoever holds a checkpoint (another
    /// process, a rebuild) to finish; returns how many events were applied here.
    pub async fn catch_up(&self) -> anyhow::Result<u64> {
        let mut applied = 0;
        loop {
            let pass = self.projector.pass().await?;
            applied += pass.applied;
            if !pass.skipped {
                return Ok(applied);
            }
            // Another process or a rebuild holds a checkpoint: wait for it to finish.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
