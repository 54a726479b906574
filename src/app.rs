use std::sync::Arc;

use sqlx::PgPool;

use crate::bus::Projections;
use crate::clock::Clock;
use crate::config::Config;
use crate::jwt::Jwt;
use crate::orchestra::Orchestra;
use crate::projector::Projector;
use crate::wechat::WechatClient;

/// Connections for transactions: the projector's pass, a rebuild, a catch-up from the CLI.
pub const TX_POOL_SIZE: u32 = 4;

/// Everything a request, a CLI command or a background task needs.
pub struct App {
    pub config: Config,
    /// For statements (reads, appends): no transaction is ever begun on it (`src/db.rs`).
    pub pool: PgPool,
    /// For transactions: the projector's passes, rebuilds.
    pub tx_pool: PgPool,
    /// For health checks and metrics (`src/metrics.rs`).
    pub probe_pool: PgPool,
    pub clock: Clock,
    pub jwt: Jwt,
    pub wechat: WechatClient,
    pub projections: Projections,
    /// Applies the log to the read models; commands wait on it.
    pub projector: Arc<Projector>,
    pub orchestra: Orchestra,
    pub campus: crate::campus::Campus,
    /// Personal data: sealing, opening, reservations (`src/personal.rs`).
    pub keys: Arc<crate::personal::KeyRing>,
    pub limits: crate::limits::Limits,
}

impl App {
    /// Connect (creating the database if missing), migrate, and catch the read models up with
    /// the log: whatever a previous process committed but did not project is projected now.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        crate::db::create_database(&config.database_url).await?;
        crate::db::migrate(&config.database_url).await?;
        // A statement may take as long as a command may wait for its turn: the request's own
        // deadline (longer) then never hides a statement that is still running.
        let pool =
            crate::db::pool(&config.database_url, config.pool_size, config.waits.turn).await?;
        let tx_pool = crate::db::transaction_pool(&config.database_url, TX_POOL_SIZE).await?;
        let probe_pool = crate::db::probe_pool(&config.database_url).await?;
        let clock = Clock::new(config.tz, config.today);
        let jwt = match &config.jwt_secret {
            Some(secret) => Jwt::new(secret.as_bytes()),
            None => Jwt::random(),
        };
        let projections: Projections = Arc::new(projections::all());
        let projector = Projector::new(tx_pool.clone(), projections.clone());
        let orchestra = Orchestra::new(&config, pool.clone(), clock, projector.clone());
        let keys = Arc::new(crate::personal::KeyRing::new(pool.clone()).await?);
        let campus = crate::campus::Campus::new(&config, pool.clone(), projector.clone());
        let app = Self {
            keys,
            campus,
            limits: crate::limits::Limits::new(pool.clone(), &config),
            wechat: WechatClient::new(&config.wechat_api),
            config,
            pool,
            tx_pool,
            probe_pool,
            clock,
            jwt,
            projections,
            projector,
            orchestra,
        };
        // One pass: what another process (or a rebuild) is applying right now is left to it.
        app.projector.pass().await?;
        Ok(Arc::new(app))
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
