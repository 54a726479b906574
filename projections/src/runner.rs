use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};

use crate::stored::{StoredEvent, SELECT_EVENTS};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} does not decode: {source}")]
    Decode {
        position: i64,
        source: serde_json::Error,
    },
    #[error("projection {0} cannot be rebuilt")]
    NotRebuildable(&'static str),
}

/// A consumer of the event log that keeps its state in tables, in the same transaction as its
/// checkpoint.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Its checkpoint's name.
    fn name(&self) -> &'static str;
    /// The tables a rebuild empties before replaying the log; empty for consumers that must
    /// never be rebuilt (the mail outbox: a rebuild would mail again).
    fn tables(&self) -> &'static [&'static str];
    /// Apply one event. Must only touch its own tables through `tx`.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError>;
}

const BATCH: i64 = 500;

/// Apply every committed event past the projection's checkpoint. Safe to call from any number of
/// tasks and processes at once: the checkpoint row is locked for the duration of each batch,
/// so each event is applied exactly once. Returns how many events were applied.
pub async fn catch_up(pool: &PgPool, projection: &dyn Projection) -> Result<u64, ProjectionError> {
    let mut applied = 0;
    loop {
        let mut tx = pool.begin().await?;
        let checkpoint = lock_checkpoint(&mut tx, projection.name()).await?;
        let n = apply_batch(&mut tx, projection, checkpoint).await?;
        tx.commit().await?;
        applied += n;
        if n < BATCH as u64 {
            return Ok(applied);
        }
    }
}

pub async fn catch_up_all(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
) -> Result<u64, ProjectionError> {
    let mut applied = 0;
    for p in projections {
        applied += catch_up(pool, p.as_ref()).await?;
    }
    Ok(applied)
}

/// Empty the projection's tables and replay the whole log into them, in one transaction:
/// readers keep seeing the old rows until the rebuilt ones are committed, and live catch-up
/// waits on the checkpoint lock meanwhile.
pub async fn rebuild(pool: &PgPool, projection: &dyn Projection) -> Result<u64, ProjectionError> {
    if projection.tables().is_empty() {
        return Err(ProjectionError::NotRebuildable(projection.name()));
    }
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, projection.name()).await?;
    for table in projection.tables() {
        // DELETE rather than TRUNCATE: TRUNCATE would block readers until the commit.
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    let mut applied = 0;
    let mut checkpoint = 0;
    loop {
        let n = apply_batch(&mut tx, projection, checkpoint).await?;
        applied += n;
        if n < BATCH as u64 {
            break;
        }
        checkpoint = current_checkpoint(&mut tx, projection.name()).await?;
    }
    tx.commit().await?;
    Ok(applied)
}

async fn lock_checkpoint(tx: &mut PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_one(&mut *tx)
        .await
}

async fn current_checkpoint(tx: &mut PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *tx)
        .await
}

/// Apply up to one batch of events after `after` and move the checkpoint past them.
async fn apply_batch(
    tx: &mut PgConnection,
    projection: &dyn Projection,
    after: i64,
) -> Result<u64, ProjectionError> {
    let events: Vec<StoredEvent> = sqlx::query_as(&format!(
        "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(0);
    };
    for event in &events {
        projection.apply(tx, event).await?;
    }
    sqlx::query("UPDATE projection_checkpoints SET position = $2 WHERE name = $1")
        .bind(projection.name())
        .bind(last)
        .execute(&mut *tx)
        .await?;
    Ok(events.len() as u64)
}
