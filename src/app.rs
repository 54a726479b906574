use std::sync::Arc;

use sqlx::PgPool;

use crate::bus::Projections;
use crate::clock::Clock;
use crate::config::Config;
use crate::jwt::Jwt;
use crate::orchestra::Orchestra;
use crate::wechat::WechatClient;

/// Everything a request, a CLI command or a background task needs.
pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub clock: Clock,
    pub jwt: Jwt,
    pub wechat: WechatClient,
    pub projections: Projections,
    pub orchestra: Orchestra,
}

impl App {
    /// Connect (creating the database if missing), migrate, and catch the read models up with
    /// the log: whatever a previous process committed but did not project is projected now.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let pool = crate::db::connect(&config.database_url, config.pool_size).await?;
        crate::db::migrate(&pool).await?;
        let lock_pool = crate::db::pool(&config.database_url, config.pool_size.div_ceil(2)).await?;
        let clock = Clock::new(config.tz, config.today);
        let jwt = match &config.jwt_secret {
            Some(secret) => Jwt::new(secret.as_bytes()),
            None => Jwt::random(),
        };
        let projections: Projections = Arc::new(projections::all());
        let orchestra =
            Orchestra::new(&config, pool.clone(), lock_pool, clock, projections.clone());
        let app = Self {
            wechat: WechatClient::new(&config.wechat_api),
            config,
            pool,
            clock,
            jwt,
            projections,
            orchestra,
        };
        app.catch_up().await?;
        Ok(Arc::new(app))
    }

    pub async fn catch_up(&self) -> anyhow::Result<u64> {
        Ok(projections::catch_up_all(&self.pool, &self.projections).await?)
    }
}
