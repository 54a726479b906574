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

/// What one call of [`catch_up_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Events applied (counted once per event, however many projections took it).
    pub applied: u64,
    /// Some projection's checkpoint was held by another transaction (another process catching
    /// up, or a rebuild) and was left to it.
    pub skipped: bool,
}

/// Apply every committed event past each projection's checkpoint, for every projection at
/// once: one transaction per batch of up to 500 events locks the checkpoints, reads the events
/// once, applies them to each projection that has not seen them and moves the checkpoints.
/// Many commands are thus projected by one commit. A checkpoint that another transaction holds
/// (a rebuild, another process) is skipped rather than waited for. Safe from any number of
/// tasks and processes at once; each event is applied to each projection exactly once.
pub async fn catch_up_all(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
) -> Result<CatchUp, ProjectionError> {
    let mut done = CatchUp::default();
    if projections.is_empty() {
        return Ok(done);
    }
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    sqlx::query(
        "INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&names)
    .execute(pool)
    .await?;
    loop {
        let mut tx = pool.begin().await?;
        let locked: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1) \
             ORDER BY name FOR UPDATE SKIP LOCKED",
        )
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
        done.skipped |= locked.len() < names.len();
        let Some(from) = locked.iter().map(|(_, p)| *p).min() else {
            tx.rollback().await?;
            return Ok(done);
        };
        let events = read_batch(&mut tx, from).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            tx.rollback().await?;
            return Ok(done);
        };
        let behind: Vec<(&dyn Projection, i64)> = locked
            .iter()
            .filter_map(|(name, at)| {
                let p = projections.iter().find(|p| p.name() == name)?;
                Some((p.as_ref(), *at))
            })
            .collect();
        for event in &events {
            for (projection, at) in &behind {
                if event.position > *at {
                    projection.apply(&mut tx, event).await?;
                }
            }
        }
        let moved: Vec<&str> = locked.iter().map(|(name, _)| name.as_str()).collect();
        sqlx::query(
            "UPDATE projection_checkpoints SET position = greatest(position, $2) WHERE name = ANY($1)",
        )
        .bind(&moved)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        done.applied += events.len() as u64;
        if (events.len() as i64) < BATCH {
            return Ok(done);
        }
    }
}

/// The lowest checkpoint among `projections`: every event up to it is in every read model.
/// `i64::MAX` when there are none.
pub async fn applied_position(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
) -> Result<i64, sqlx::Error> {
    if projections.is_empty() {
        return Ok(i64::MAX);
    }
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let (count, min): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), min(position) FROM projection_checkpoints WHERE name = ANY($1)",
    )
    .bind(&names)
    .fetch_one(pool)
    .await?;
    // A projection without a checkpoint row has applied nothing yet.
    Ok(if count < names.len() as i64 { 0 } else { min.unwrap_or(0) })
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

async fn read_batch(tx: &mut PgConnection, after: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await
}

/// Apply up to one batch of events after `after` and move the checkpoint past them.
async fn apply_batch(
    tx: &mut PgConnection,
    projection: &dyn Projection,
    after: i64,
) -> Result<u64, ProjectionError> {
    let events = read_batch(tx, after).await?;
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
