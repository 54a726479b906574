//! The time machine's replays: the read models as they stood at a cut of the log, built by
//! the projections' own `apply` into a schema of their own beside the live tables, and kept
//! for the next question about the same moment.
//!
//! - **A cut** is a prefix of the log in its order (transaction, position). The cut of a moment
//!   holds the events recorded at or before it, stopping before the first transaction that
//!   took its id after it (a transaction in flight then, or not begun), and never past the
//!   horizon (what is still being written cannot fall below a cut that is kept).
//! - **A replay** is one transaction: the schema, its tables (like the live ones, indexes
//!   included), every event of the cut applied in batches, and its row in `view_replays`,
//!   committed together. A replay that dies leaves nothing behind. Its transaction is listed
//!   in `projection_rebuilds`, so the live read models never wait for it, and it yields to
//!   live commands (it pauses between batches while the projector has work).
//! - **Kept**: at most `ENSEMBLE_VIEW_REPLAYS`, shared by every process on the database (a
//!   replay of the same cut is reused); the least recently used go first (never one used in
//!   the last minute). One replay at a time per process.
//! - **Read** through a pool of its own whose connections see only that schema
//!   (`search_path`), read-only: the schema holds the read models of the cut, and views of
//!   the live tables that are not read models (the keys: what was erased since stays erased).
//!   A query on a dropped replay fails; it never falls through to the live tables.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::projector::Projector;
use crate::runner::{self, LogPosition, Projections};
use crate::stored::{ProjectionError, StoredEvent, SELECT_EVENTS};

/// Events applied per batch (a transaction) of a replay, between two chances to yield to
/// live work.
const BATCH: i64 = 20_000;
/// Between a replay's schema name and its build's: a schema being built.
const BUILDING: &str = "_building_";
/// A building schema this old belongs to a build that died.
const ABANDONED_AFTER_SECS: i64 = 3600;
/// A replay is never dropped within this long of its last use (a question may be reading it:
/// its statements are cut off after 10 s).
const IN_USE: &str = "15 seconds";
/// The newest migration of this build: the shape of the read models' tables.
const SHAPE: &str = "(SELECT max(version) FROM _sqlx_migrations WHERE success)";
/// How many erasures have committed: a replay built under another count may hold what was
/// erased since.
const GENERATION: &str = "(SELECT generation FROM erasures)";
/// Between a building schema's name and the erasure generation it was begun under.
const GENERATION_MARK: &str = "_g";
/// The prefix of the schemas of replays.
pub const SCHEMA_PREFIX: &str = "ensemble_view_";

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Another replay is being built in this process; try again after a while.
    #[error("another moment is being replayed; try again in a few seconds")]
    Busy,
    /// The events up to that position are not all written yet.
    #[error("the log up to that position is still being written; try again in a moment")]
    Unsettled,
    /// An erasure committed while the moment was replayed: the replay was thrown away.
    #[error("an erasure committed while this moment was replayed; ask again")]
    Erased,
    #[error("no event has position {0}")]
    NoSuchPosition(i64),
    #[error("as_of is in the future")]
    Future,
    #[error("the replay could not finish: {0}")]
    Failed(String),
}

/// A moment of the log: the last event of the cut (or the start), and the time asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub at: LogPosition,
    pub time: DateTime<Utc>,
}

/// The read models as they stood at a cut, to be queried.
#[derive(Clone)]
pub struct View {
    pub cut: LogPosition,
    /// Connections that see only this replay's schema, read-only.
    pub pool: PgPool,
}

pub struct Replays {
    /// Transactions (the replays), and the registry.
    pool: PgPool,
    url: String,
    projections: Projections,
    projector: Arc<Projector>,
    keep: u32,
    wait: Duration,
    building: Arc<Semaphore>,
    /// How long after it begins a transaction of the event store has taken its id at the
    /// latest: its statement's longest run (with a margin).
    statement_bound: Duration,
    pools: Mutex<HashMap<String, PgPool>>,
    built: AtomicU64,
}

impl Replays {
    pub fn new(
        pool: PgPool,
        url: &str,
        projections: Projections,
        projector: Arc<Projector>,
        keep: u32,
        wait: Duration,
        statement_timeout: Duration,
    ) -> Self {
        Self {
            pool,
            url: url.to_string(),
            projections,
            projector,
            keep,
            wait,
            building: Arc::new(Semaphore::new(1)),
            statement_bound: statement_timeout * 2 + Duration::from_secs(5),
            pools: Default::default(),
            built: AtomicU64::new(0),
        }
    }

    /// Replays this process has built.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// The cut of the moment `time`.
    pub async fn cut_at(&self, time: DateTime<Utc>) -> Result<Cut, ViewError> {
        let mut conn = self.pool.acquire().await?;
        let future: bool = sqlx::query_scalar("SELECT $1 > clock_timestamp()")
            .bind(time)
            .fetch_one(&mut *conn)
            .await?;
        if future {
            return Err(ViewError::Future);
        }
        let horizon = runner::horizon(&mut conn).await?;
        // The first transaction that took its id after `time`. Every transaction recorded
        // after it did (it takes its id after it begins); the first of them, recorded at t1,
        // took its id by t1 + a statement's longest run, before any transaction recorded
        // later still: the smallest id is among those recorded up to then.
        let first_after: Option<i64> = sqlx::query_scalar(
            "WITH t1 AS (SELECT min(recorded_at) AS at FROM events WHERE recorded_at > $1) \
             SELECT min(x) FROM (SELECT transaction_id AS x FROM events, t1 \
                 WHERE recorded_at > $1 AND recorded_at <= t1.at + $2 OFFSET 0) within",
        )
        .bind(time)
        .bind(self.statement_bound)
        .fetch_one(&mut *conn)
        .await?;
        let last: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, position FROM events WHERE transaction_id < $1 \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
        )
        .bind(first_after.unwrap_or(i64::MAX).min(horizon))
        .fetch_optional(&mut *conn)
        .await?;
        Ok(Cut {
            at: last
                .map(|(transaction_id, position)| LogPosition {
                    transaction_id,
                    position,
                })
                .unwrap_or_default(),
            time,
        })
    }

    /// The cut that ends with the transaction that wrote the event at `position` (its time:
    /// when that was recorded).
    pub async fn cut_at_position(&self, position: i64) -> Result<Cut, ViewError> {
        let mut conn = self.pool.acquire().await?;
        let horizon = runner::horizon(&mut conn).await?;
        // The whole transaction that wrote it: a state between two of its events never was.
        let event: Option<(i64, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT e.transaction_id, \
                    (SELECT max(position) FROM events t WHERE t.transaction_id = e.transaction_id), \
                    e.recorded_at \
             FROM events e WHERE e.position = $1",
        )
        .bind(position)
        .fetch_optional(&mut *conn)
        .await?;
        let (transaction_id, last, time) = event.ok_or(ViewError::NoSuchPosition(position))?;
        if transaction_id >= horizon {
            return Err(ViewError::Unsettled);
        }
        Ok(Cut {
            at: LogPosition {
                transaction_id,
                position: last,
            },
            time,
        })
    }

    /// The read models as they stood at `cut`: a kept replay, or a new one (built on a task of
    /// its own: a question that gives up never cuts it short, and the next one finds it).
    pub async fn view(self: &Arc<Self>, cut: LogPosition) -> Result<View, ViewError> {
        let schema = schema_of(cut);
        if let Some(view) = self.kept(&schema, cut).await? {
            return Ok(view);
        }
        let permit = tokio::time::timeout(self.wait, self.building.clone().acquire_owned())
            .await
            .map_err(|_| ViewError::Busy)?
            .expect("the semaphore is never closed");
        // Someone may have built it meanwhile (here or in another process).
        if let Some(view) = self.kept(&schema, cut).await? {
            return Ok(view);
        }
        // Room first: at most `keep` replays. When every one was used a moment ago (questions
        // about that many moments at once), the next moment waits its turn.
        self.evict(self.keep.saturating_sub(1)).await?;
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM view_replays")
            .fetch_one(&self.pool)
            .await?;
        if kept >= self.keep as i64 {
            return Err(ViewError::Busy);
        }
        let me = self.clone();
        let build = tokio::spawn(async move {
            let built = me.build(cut).await;
            drop(permit);
            built
        });
        build
            .await
            .map_err(|e| ViewError::Failed(e.to_string()))??;
        // Gone already: an erasure committed meanwhile made it stale (and it was dropped).
        self.kept(&schema, cut).await?.ok_or(ViewError::Erased)
    }

    /// A kept replay of `cut`, marked as used.
    async fn kept(&self, schema: &str, cut: LogPosition) -> Result<Option<View>, ViewError> {
        let found: Option<String> = sqlx::query_scalar(&format!(
            "UPDATE view_replays SET used_at = now() WHERE schema_name = $1 AND shape = {SHAPE} \
             AND erasures = {GENERATION} RETURNING schema_name"
        ))
        .bind(schema)
        .fetch_optional(&self.pool)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        let pool = {
            let mut pools = self.pools.lock().unwrap();
            match pools.get(schema) {
                Some(pool) => pool.clone(),
                None => {
                    let options = PgConnectOptions::from_str(&self.url)
                        .map_err(|e| ViewError::Failed(e.to_string()))?
                        .application_name("ensemble-view")
                        .options([
                            ("search_path", schema),
                            ("default_transaction_read_only", "on"),
                            ("statement_timeout", "10s"),
                        ]);
                    let pool = PgPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .idle_timeout(Duration::from_secs(60))
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_lazy_with(options);
                    pools.insert(schema.to_string(), pool.clone());
                    pool
                }
            }
        };
        Ok(Some(View { cut, pool }))
    }

    /// Build the replay of `cut`: in a schema of its own under a name of its own, batch by
    /// batch (each batch a transaction of its own: a long transaction would keep every
    /// version of the rows it rewrites), then renamed into place and registered in one
    /// transaction. A build that dies leaves only its building schema, dropped later.
    async fn build(&self, cut: LogPosition) -> Result<(), ViewError> {
        let schema = schema_of(cut);
        let started = std::time::Instant::now();
        // Read before any key is: an erasure that commits while this builds makes it stale.
        let generation: i64 = sqlx::query_scalar(&format!("SELECT {GENERATION}"))
            .fetch_one(&self.pool)
            .await?;
        // The generation in its name: a building schema left by a build that died is dropped
        // as soon as an erasure makes it stale ([`Replays::drop_stale`]).
        let building = format!(
            "{schema}{BUILDING}{}_{}{GENERATION_MARK}{generation}",
            Utc::now().timestamp(),
            rand::random::<u16>()
        );
        let entry = format!("view:{building}");
        let filled = self.fill(&building, &entry, cut).await;
        let _ = sqlx::query("DELETE FROM projection_rebuilds WHERE name = $1")
            .bind(&entry)
            .execute(&self.pool)
            .await;
        let events = match filled {
            Ok(events) => events,
            Err(e) => {
                let _ = sqlx::Executor::execute(
                    &self.pool,
                    format!("DROP SCHEMA IF EXISTS {building} CASCADE").as_str(),
                )
                .await;
                // Its schema dropped under it by an erasure's clean-up: ask again.
                let now: Option<i64> = sqlx::query_scalar(&format!("SELECT {GENERATION}"))
                    .fetch_optional(&self.pool)
                    .await
                    .ok()
                    .flatten();
                if now.is_some_and(|now| now != generation) {
                    return Err(ViewError::Erased);
                }
                return Err(e);
            }
        };
        // One process at a time puts a moment in place; one that finds it there (built
        // meanwhile by another) keeps that one, which questions may be reading.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&schema)
            .execute(&mut *tx)
            .await?;
        let theirs: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT true FROM view_replays WHERE schema_name = $1 AND shape = {SHAPE} \
             AND erasures = {GENERATION}"
        ))
        .bind(&schema)
        .fetch_optional(&mut *tx)
        .await?;
        if theirs.is_some() {
            sqlx::Executor::execute(
                &mut *tx,
                format!("DROP SCHEMA IF EXISTS {building} CASCADE").as_str(),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        sqlx::Executor::execute(
            &mut *tx,
            format!(
                "SET LOCAL lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE; \
                 ALTER SCHEMA {building} RENAME TO {schema};"
            )
            .as_str(),
        )
        .await?;
        sqlx::query(&format!(
            "INSERT INTO view_replays (schema_name, transaction_id, position, events, shape, erasures) \
             VALUES ($1, $2, $3, $4, {SHAPE}, $5) ON CONFLICT (schema_name) DO UPDATE \
             SET events = excluded.events, shape = excluded.shape, erasures = excluded.erasures, \
             built_at = now(), used_at = now()"
        ))
        .bind(&schema)
        .bind(cut.transaction_id)
        .bind(cut.position)
        .bind(events as i64)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.built.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            position = cut.position,
            events,
            seconds = started.elapsed().as_secs_f64(),
            "replayed the log for the time machine"
        );
        Ok(())
    }

    /// The building schema's tables, then the cut's events: how many were applied.
    async fn fill(&self, building: &str, entry: &str, cut: LogPosition) -> Result<u64, ViewError> {
        let mut conn = self.pool.acquire().await?;
        let live: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut *conn)
            .await?;
        let rebuilt: Vec<&str> = self
            .projections
            .iter()
            .flat_map(|p| p.tables())
            .copied()
            .collect();
        let others: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename <> ALL($2)",
        )
        .bind(&live)
        .bind(&rebuilt)
        .fetch_all(&mut *conn)
        .await?;
        let mut setup = format!("BEGIN; CREATE SCHEMA {building};");
        for table in &rebuilt {
            setup.push_str(&format!(
                "CREATE TABLE {building}.{table} (LIKE \"{live}\".{table} INCLUDING ALL);"
            ));
        }
        // What is not a read model is read live (the keys above all: erasure wins).
        for table in &others {
            setup.push_str(&format!(
                "CREATE VIEW {building}.\"{t}\" AS SELECT * FROM \"{live}\".\"{t}\";",
                t = table.replace('"', "\"\"")
            ));
        }
        setup.push_str("COMMIT;");
        sqlx::Executor::execute(&mut *conn, setup.as_str()).await?;
        drop(conn);
        let mut after = LogPosition::default();
        let mut applied = 0u64;
        loop {
            let took = std::time::Instant::now();
            let mut tx = self.pool.begin().await?;
            runner::build_beside(&self.pool, &mut tx, entry, building, &live).await?;
            let events: Vec<StoredEvent> = sqlx::query_as(&format!(
                "{SELECT_EVENTS} WHERE (transaction_id, position) > ($1, $2) \
                 AND (transaction_id, position) <= ($3, $4) \
                 ORDER BY transaction_id, position LIMIT $5"
            ))
            .bind(after.transaction_id)
            .bind(after.position)
            .bind(cut.transaction_id)
            .bind(cut.position)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            for projection in self.projections.iter() {
                if !projection.tables().is_empty() {
                    projection.apply(&mut tx, &events).await?;
                }
            }
            tx.commit().await?;
            applied += events.len() as u64;
            match events.last() {
                Some(last) if (events.len() as i64) == BATCH => after = last.log_position(),
                _ => break,
            }
            // Live commands first: while they wait for the read models, twice as long again
            // as the batch took.
            if self.projector.busy() {
                tokio::time::sleep(took.elapsed() * 2).await;
            }
        }
        Ok(applied)
    }

    /// Drop the least recently used replays beyond the number kept (none used in the last
    /// minute: a question may be reading it).
    /// Drop every replay built before the latest erasure: it may hold what was erased (names
    /// and texts opened with keys destroyed since). Run before each new replay and on the
    /// housekeeping clock (`ensemble serve`), so that nothing erased stays in the database for
    /// long. A replay being read waits for its readers (at most 5 s, else the next round).
    pub async fn drop_stale(&self) -> Result<u64, ViewError> {
        let stale: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT schema_name FROM view_replays WHERE erasures <> {GENERATION}"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut dropped = 0;
        // Builds begun before the latest erasure, under way or left by a process that died:
        // their tables hold what was opened then. One under way fails and is asked again.
        let generation: i64 = sqlx::query_scalar(&format!("SELECT {GENERATION}"))
            .fetch_one(&self.pool)
            .await?;
        let building = self.building_schemas().await?;
        for schema in building {
            let begun_under = schema
                .rsplit_once(GENERATION_MARK)
                .and_then(|(_, g)| g.parse::<i64>().ok());
            if begun_under.is_some_and(|g| g != generation) {
                let mut tx = self.pool.begin().await?;
                let drop = sqlx::Executor::execute(
                    &mut *tx,
                    format!(
                        "SET LOCAL lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )
                    .as_str(),
                )
                .await;
                match drop {
                    Ok(_) => {
                        tx.commit().await?;
                        dropped += 1;
                    }
                    // Its build holds it for a moment: the next round.
                    Err(e) => tracing::debug!(error = %e, schema, "a stale build is still busy"),
                }
            }
        }
        for schema in stale {
            if self
                .drop_replay(&schema, &format!("erasures <> {GENERATION}"))
                .await?
            {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Unregister the replay `schema` if its row still meets `still` (SQL on `view_replays`),
    /// and drop its schema, in one transaction (waiting at most 5 s for its readers). True if
    /// it was dropped.
    async fn drop_replay(&self, schema: &str, still: &str) -> Result<bool, ViewError> {
        let mut tx = self.pool.begin().await?;
        let gone: Option<String> = sqlx::query_scalar(&format!(
            "DELETE FROM view_replays WHERE schema_name = $1 AND ({still}) RETURNING schema_name"
        ))
        .bind(schema)
        .fetch_optional(&mut *tx)
        .await?;
        let dropped = gone.is_some() && schema.starts_with(SCHEMA_PREFIX);
        if dropped {
            sqlx::Executor::execute(
                &mut *tx,
                format!("SET LOCAL lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE")
                    .as_str(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }

    /// The schemas of builds under way, or left by builds that died.
    async fn building_schemas(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) AND strpos(nspname, $2) > 0",
        )
        .bind(SCHEMA_PREFIX)
        .bind(BUILDING)
        .fetch_all(&self.pool)
        .await
    }

    async fn evict(&self, keep: u32) -> Result<(), ViewError> {
        self.drop_stale().await?;
        // Those of another shape first (never read again), then the least recently used.
        let old: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT schema_name FROM view_replays ORDER BY shape = {SHAPE} DESC, used_at DESC OFFSET $1"
        ))
        .bind(keep as i64)
        .fetch_all(&self.pool)
        .await?;
        for schema in old {
            self.drop_replay(
                &schema,
                &format!("used_at < now() - interval '{IN_USE}' OR shape <> {SHAPE}"),
            )
            .await?;
        }
        // Builds that died (their process with them): a build takes minutes at most.
        let building = self.building_schemas().await?;
        let now = Utc::now().timestamp();
        for schema in building {
            let started = schema
                .rsplit(BUILDING)
                .next()
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<i64>().ok());
            if started.is_some_and(|at| now - at > ABANDONED_AFTER_SECS) {
                sqlx::Executor::execute(
                    &self.pool,
                    format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str(),
                )
                .await?;
            }
        }
        // The listings of builds whose schema is gone (a build killed with its process).
        sqlx::query(
            "DELETE FROM projection_rebuilds WHERE starts_with(name, 'view:') \
             AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = substr(name, 6))",
        )
        .execute(&self.pool)
        .await?;
        // Pools of replays another process dropped.
        let registered: Vec<String> = sqlx::query_scalar("SELECT schema_name FROM view_replays")
            .fetch_all(&self.pool)
            .await?;
        let gone: Vec<PgPool> = {
            let mut pools = self.pools.lock().unwrap();
            let stale: Vec<String> = pools
                .keys()
                .filter(|schema| !registered.contains(schema))
                .cloned()
                .collect();
            stale
                .iter()
                .filter_map(|schema| pools.remove(schema))
                .collect()
        };
        for pool in gone {
            tokio::spawn(async move { pool.close().await });
        }
        Ok(())
    }
}

/// Drop every replay, and builds under way (before a migration: they are caches of the read
/// models' old shape, and their views of live tables would hold the migration up).
pub async fn drop_all(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(SCHEMA_PREFIX)
            .fetch_all(&mut *conn)
            .await?;
    for schema in schemas {
        sqlx::Executor::execute(
            &mut *conn,
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str(),
        )
        .await?;
    }
    let registry: Option<String> = sqlx::query_scalar("SELECT to_regclass('view_replays')::text")
        .fetch_one(&mut *conn)
        .await?;
    if registry.is_some() {
        sqlx::query("DELETE FROM view_replays")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The schema of the replay of `cut` (the same in every process).
fn schema_of(cut: LogPosition) -> String {
    format!(
        "{SCHEMA_PREFIX}{}_{}",
        cut.transaction_id.max(0),
        cut.position.max(0)
    )
}
