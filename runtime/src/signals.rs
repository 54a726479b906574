//! How background tasks signal: a heartbeat that a supervisor watches, and PostgreSQL's
//! LISTEN/NOTIFY between processes (with polling when it is not available).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// Proof of life from a supervised task: it beats at least once per round of work.
#[derive(Clone)]
pub struct Heartbeat {
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Heartbeat {
    pub fn new() -> Self {
        Self {
            last: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    pub fn beat(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn silent_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// A LISTEN connection on `channel`, or None (then the caller polls).
pub async fn listen(pool: &PgPool, channel: &str) -> Option<PgListener> {
    match PgListener::connect_with(pool).await {
        Ok(mut l) => match l.listen(channel).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN connection failed; polling only");
            None
        }
    }
}

/// Until a notification other than `ignore` (our own) arrives, or `wait` passes.
pub async fn notified(listener: &mut Option<PgListener>, wait: Duration, ignore: &str) {
    let Some(l) = listener.as_mut() else {
        return tokio::time::sleep(wait).await;
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            r = l.recv() => match r {
                Ok(n) if n.payload() == ignore => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; it reconnects");
                    return tokio::time::sleep_until(deadline).await;
                }
            },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}
