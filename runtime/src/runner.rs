use async_trait::async_trait;
use sqlx::{Connection, PgConnection, PgPool};

pub use crate::stored::{LogPosition, ProjectionError};
use crate::stored::{StoredEvent, SELECT_EVENTS};

/// A consumer of the event log that keeps its state in tables, in the same transaction as its
/// checkpoint.
/// The read models a process keeps, in the order they are caught up.
pub type Projections = std::sync::Arc<Vec<Box<dyn Projection>>>;

#[async_trait]
pub trait Projection: Send + Sync {
    /// Its checkpoint's name.
    fn name(&self) -> &'static str;
    /// The tables a rebuild empties before replaying the log; empty for consumers that must
    /// never be rebuilt (the mail outbox: a rebuild would mail again).
    fn tables(&self) -> &'static [&'static str];
    /// Tables it writes that a rebuild must never empty (those of a consumer that is never
    /// rebuilt); shown with the others by `projections list`.
    fn kept_tables(&self) -> &'static [&'static str] {
        &[]
    }
    /// Apply a run of the log, in order: one event, the projector's pass, a rebuild's batch.
    /// Must only touch its own tables through `tx`, and leave the same rows however the log is
    /// cut into runs (a projection may write a run with fewer statements than one by one).
    /// One method for every caller, so live updates and rebuilds cannot take different paths.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError>;

    /// [`Projection::apply`], told where the projection's checkpoint stood before `events`
    /// (the live passes call this): a projection may then use what it remembers of its own
    /// last pass when the checkpoint is where that pass left it.
    async fn apply_from(
        &self,
        tx: &mut PgConnection,
        seen: LogPosition,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let _ = seen;
        self.apply(tx, events).await
    }
}

const BATCH: i64 = 500;
/// A rebuild reads the log in bigger steps: nobody waits for its commit.
const REBUILD_BATCH: i64 = 50_000;
/// Events between two reports of a rebuild's progress.
const PROGRESS_STEP: usize = 5_000;

/// What one call of [`catch_up_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Events applied (counted once per event, however many projections took it).
    pub applied: u64,
    /// Some projection's checkpoint was held by another transaction (another process catching
    /// up, or a rebuild) and was left to it.
    pub skipped: bool,
    /// Where every read model stands now, when this call held every checkpoint to its end (so
    /// none is being rebuilt); None otherwise (ask [`applied_position`]).
    pub position: Option<LogPosition>,
}

/// The horizon: every transaction below it that could write to this database's log has ended
/// (a rebuild writes no events, so it does not count), so the events below it that will ever
/// be there are all visible now. Read in a statement of its own, before the reading
/// transaction takes an id of its own.
///
/// Only transactions of this database count (a long transaction elsewhere on the cluster must
/// not hold our read models back); `pg_stat_get_activity` (what `pg_stat_activity` shows)
/// gives their ids to the same role (or to `pg_read_all_stats`), so every writer of the log
/// must be one of those. Its `backend_xid` is a 32-bit xid: matched on the low 32 bits, which
/// can only make the horizon lower. When no transaction with an id is running at all (an idle
/// moment), the horizon is the snapshot's xmax and the activity table is not read.
/// The horizon: every transaction with an id below it has ended, so no event below it can
/// still appear (readers that follow the log in order stop there).
pub async fn horizon(tx: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT {HORIZON}"))
        .fetch_one(&mut *tx)
        .await
}

const HORIZON: &str = "(WITH snap AS (SELECT pg_current_snapshot() AS s) \
     SELECT CASE WHEN NOT EXISTS (SELECT FROM snap, pg_snapshot_xip(snap.s)) \
         THEN (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap) \
         ELSE coalesce( \
             (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x \
              WHERE x::text::bigint % 4294967296 IN ( \
                    SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) AS a \
                    WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                      AND a.backend_xid IS NOT NULL) \
                AND x::text::bigint NOT IN (SELECT transaction_id FROM projection_rebuilds)), \
             (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)) END)";

/// Make sure every projection has a checkpoint row (only the missing ones are inserted: an
/// insert that meets a row a rebuild holds would wait for it).
pub async fn ensure_checkpoints(
    conn: &mut PgConnection,
    projections: &[Box<dyn Projection>],
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    sqlx::query(
        "INSERT INTO projection_checkpoints (name) SELECT n FROM unnest($1::text[]) AS n \
         WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c WHERE c.name = n) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A transaction that holds the horizon back.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonHolder {
    pub pid: i32,
    pub application_name: String,
    pub state: String,
    /// Seconds since its transaction began.
    pub age: f64,
}

/// The oldest transaction of this database that could still write to the log (it has an id
/// and has not ended), if it began more than `older_than` seconds ago: while it runs, no
/// consumer reads past its id, so the read models and mail stand still. Costs a read of
/// `pg_stat_activity`: for occasional checks, not for every pass.
pub async fn horizon_holder(
    conn: &mut PgConnection,
    older_than: f64,
) -> Result<Option<HorizonHolder>, sqlx::Error> {
    let row: Option<(i32, String, String, f64)> = sqlx::query_as(
        "SELECT pid, coalesce(application_name, ''), coalesce(state, ''), \
                extract(epoch FROM now() - xact_start)::float8 \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND backend_xid IS NOT NULL \
           AND backend_xid::text::bigint NOT IN \
               (SELECT transaction_id % 4294967296 FROM projection_rebuilds) \
           AND xact_start < now() - make_interval(secs => $1) \
         ORDER BY xact_start LIMIT 1",
    )
    .bind(older_than)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(
        row.map(|(pid, application_name, state, age)| HorizonHolder {
            pid,
            application_name,
            state,
            age,
        }),
    )
}

/// Apply every committed event past each projection's checkpoint, for every projection at
/// once: one transaction per batch of up to 500 events locks the checkpoints, reads the events
/// once, applies them to each projection that has not seen them and moves the checkpoints.
/// Many commands are thus projected by one commit. A checkpoint that another transaction holds
/// (a rebuild, another process) is skipped rather than waited for. Safe from any number of
/// tasks and processes at once; each event is applied to each projection exactly once.
/// Call [`ensure_checkpoints`] first: a projection without a checkpoint row is not caught up.
///
/// `announce_as`: a batch that applied something tells the other processes on the
/// `ensemble_events` channel, with this payload, when it commits (their waiting commands and
/// mail workers look at once instead of at their next poll).
pub async fn catch_up_all(
    conn: &mut PgConnection,
    projections: &[Box<dyn Projection>],
    announce_as: Option<&str>,
) -> Result<CatchUp, ProjectionError> {
    let mut done = CatchUp::default();
    if projections.is_empty() {
        done.position = Some(LogPosition::END);
        return Ok(done);
    }
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    loop {
        let mut tx = conn.begin().await?;
        // The horizon in the same statement: it is computed from the statement's snapshot,
        // taken before this transaction locks anything (and so before it has an id).
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT name, transaction_id, position, {HORIZON} FROM projection_checkpoints \
             WHERE name = ANY($1) ORDER BY name FOR UPDATE SKIP LOCKED"
        ))
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
        let horizon = rows.first().map_or(0, |r| r.3);
        let locked: Vec<(String, i64, i64)> =
            rows.into_iter().map(|(n, t, p, _)| (n, t, p)).collect();
        let all_held = locked.len() == names.len();
        done.skipped |= !all_held;
        let at = |(_, t, p): &(String, i64, i64)| LogPosition {
            transaction_id: *t,
            position: *p,
        };
        let Some(from) = locked.iter().map(at).min() else {
            tx.rollback().await?;
            return Ok(done);
        };
        let events = read_batch(&mut tx, from, horizon).await?;
        let Some(last) = events.last().map(StoredEvent::log_position) else {
            tx.rollback().await?;
            done.position = all_held.then_some(from);
            return Ok(done);
        };
        // In the order of `projections` (not the locks' order): a later one may read what an
        // earlier one wrote in this pass (the outbox reads the roster's names).
        let behind: Vec<(&dyn Projection, LogPosition)> = projections
            .iter()
            .filter_map(|p| {
                let row = locked.iter().find(|row| row.0 == p.name())?;
                Some((p.as_ref(), at(row)))
            })
            .collect();
        // Each projection writes only its own tables: one after the other, each with the
        // events past its own checkpoint.
        for (projection, seen) in &behind {
            let unseen = events.partition_point(|e| e.log_position() <= *seen);
            projection
                .apply_from(&mut tx, *seen, &events[unseen..])
                .await?;
        }
        let moved: Vec<&str> = locked.iter().map(|(name, _, _)| name.as_str()).collect();
        move_checkpoints(&mut tx, &moved, last, announce_as).await?;
        tx.commit().await?;
        done.applied += events.len() as u64;
        if (events.len() as i64) < BATCH {
            // Every checkpoint is now at `last` or beyond it, and the lowest was below it.
            done.position = all_held.then_some(last);
            return Ok(done);
        }
    }
}

/// Move the checkpoints `names` to `to`, and announce it at the commit (`announce_as`), in one
/// statement.
async fn move_checkpoints(
    tx: &mut PgConnection,
    names: &[&str],
    to: LogPosition,
    announce_as: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH moved AS ( \
             UPDATE projection_checkpoints SET transaction_id = $2, position = $3 \
             WHERE name = ANY($1) AND (transaction_id, position) < ($2, $3) \
         ) \
         SELECT pg_notify('ensemble_events', $4) WHERE $4::text IS NOT NULL",
    )
    .bind(names)
    .bind(to.transaction_id)
    .bind(to.position)
    .bind(announce_as)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The lowest checkpoint among `projections`: every event up to it is in every read model.
/// [`LogPosition::END`] when there are none.
pub async fn applied_position(
    conn: &mut PgConnection,
    projections: &[Box<dyn Projection>],
) -> Result<LogPosition, sqlx::Error> {
    if projections.is_empty() {
        return Ok(LogPosition::END);
    }
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    // A read model being rebuilt is left out: it is not live until its rebuild commits.
    let rows: Vec<(String, i64, i64, bool)> = sqlx::query_as(
        "SELECT c.name, c.transaction_id, c.position, \
             coalesce(pg_xact_status(r.transaction_id::text::xid8) = 'in progress', false) \
         FROM projection_checkpoints c LEFT JOIN projection_rebuilds r USING (name) \
         WHERE c.name = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    // A projection without a checkpoint row has applied nothing yet.
    if rows.len() < names.len() {
        return Ok(LogPosition::default());
    }
    Ok(rows
        .into_iter()
        .filter(|(_, _, _, rebuilding)| !rebuilding)
        .map(|(_, transaction_id, position, _)| LogPosition {
            transaction_id,
            position,
        })
        .min()
        .unwrap_or(LogPosition::END))
}

/// The schema a rebuild builds its tables in, beside the live ones.
pub const SHADOW_SCHEMA: &str = "ensemble_rebuild";
/// The projections a rebuild can build afresh (those with tables of their own) that `names`
/// choose, each once, in the order given; no names: all of them. An unknown name, or one
/// without tables, is refused with the names that can be rebuilt.
pub fn rebuildable<'a, S: AsRef<str>>(
    projections: &'a [Box<dyn Projection>],
    names: &[S],
) -> Result<Vec<&'a dyn Projection>, String> {
    let all: Vec<&dyn Projection> = projections
        .iter()
        .filter(|p| !p.tables().is_empty())
        .map(|p| p.as_ref())
        .collect();
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen: Vec<&dyn Projection> = Vec::new();
    for name in names.iter().map(AsRef::as_ref) {
        if chosen.iter().any(|p| p.name() == name) {
            continue;
        }
        match all.iter().find(|p| p.name() == name) {
            Some(p) => chosen.push(*p),
            None => {
                let can: Vec<&str> = all.iter().map(|p| p.name()).collect();
                return Err(format!(
                    "{name:?} is not a projection that can be rebuilt (these can: {})",
                    can.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

/// Session advisory lock: one rebuild at a time on a database.
const REBUILD_LOCK: i64 = 0x656e_7365_6d62_6c65;
/// The name under which a rebuild's transactions are listed in `projection_rebuilds` (so that
/// they hold back nobody's horizon: they write no events).
const SHADOW_ENTRY: &str = "shadow";

/// Rebuild projections blue/green: their tables are built afresh beside the live ones (in
/// [`SHADOW_SCHEMA`], by the same `apply`, in short transactions of 50,000 events),
/// caught up to the head of the log, and swapped in atomically with the checkpoints. Readers
/// keep the live tables until the swap (a moment) and never see a half-built one; the live
/// projections keep catching up meanwhile, and commands never wait for the rebuild. If the
/// process dies or is interrupted, the live tables are untouched and the next rebuild drops
/// what was left. `progress(replayed, total)` is called after each batch. Returns the number
/// of events replayed.
pub async fn rebuild(
    pool: &PgPool,
    projections: &[&dyn Projection],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, ProjectionError> {
    if let Some(p) = projections.iter().find(|p| p.tables().is_empty()) {
        return Err(ProjectionError::NotRebuildable(p.name()));
    }
    // A connection of its own, never returned to the pool, holds the rebuild lock.
    let mut guard = pool.acquire().await?.detach();
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(REBUILD_LOCK)
        .fetch_one(&mut guard)
        .await?;
    if !mine {
        return Err(ProjectionError::RebuildRunning);
    }
    let result = rebuild_locked(pool, &mut guard, projections, progress).await;
    // Whatever happened, no shadow tables stay behind (a crash leaves them to the next run).
    let cleanup = sqlx::query(&format!("DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE"))
        .execute(&mut guard)
        .await;
    let _ = sqlx::query("DELETE FROM projection_rebuilds WHERE name = $1")
        .bind(SHADOW_ENTRY)
        .execute(&mut guard)
        .await;
    let _ = guard.close().await;
    let applied = result?;
    cleanup?;
    Ok(applied)
}

async fn rebuild_locked(
    pool: &PgPool,
    guard: &mut PgConnection,
    projections: &[&dyn Projection],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, ProjectionError> {
    let live: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *guard)
        .await?;
    let tables: Vec<&str> = projections
        .iter()
        .flat_map(|p| p.tables())
        .copied()
        .collect();
    let mut setup =
        format!("DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE; CREATE SCHEMA {SHADOW_SCHEMA};");
    for table in &tables {
        setup.push_str(&format!(
            "CREATE TABLE {SHADOW_SCHEMA}.{table} (LIKE \"{live}\".{table} INCLUDING ALL);"
        ));
    }
    sqlx::Executor::execute(&mut *guard, setup.as_str()).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *guard)
        .await?;
    let total = total as u64;
    progress(0, total);
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    // Build beside the live tables, in short transactions.
    let mut at = LogPosition::default();
    let mut applied = 0;
    loop {
        let mut tx = pool.begin().await?;
        let (events, _) = shadow_batch(pool, &mut tx, &live, at).await?;
        // In steps, each through every projection in turn (as the live projector applies its
        // passes), so that progress moves within a batch.
        for (i, step) in events.chunks(PROGRESS_STEP).enumerate() {
            for projection in projections {
                projection.apply(&mut tx, step).await?;
            }
            let done = applied + (i * PROGRESS_STEP + step.len()) as u64;
            progress(done, total.max(done));
        }
        tx.commit().await?;
        applied += events.len() as u64;
        if let Some(last) = events.last() {
            at = last.log_position();
        }
        progress(applied, total.max(applied));
        if (events.len() as i64) < REBUILD_BATCH {
            break;
        }
    }
    // Swap: with the live checkpoints locked (the projector leaves them alone meanwhile), catch
    // the new tables up to the head, put them in place of the live ones, and move the
    // checkpoints, in one transaction. Readers wait for it only a moment; if they would be
    // held up for long (a long read on a live table), give up and try again.
    let mut tries = 0;
    loop {
        tries += 1;
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '2s'")
            .execute(&mut *tx)
            .await?;
        let swapped: Result<(u64, LogPosition), ProjectionError> = async {
            sqlx::query(
                "SELECT 1 FROM projection_checkpoints WHERE name = ANY($1) ORDER BY name FOR UPDATE",
            )
            .bind(&names)
            .execute(&mut *tx)
            .await?;
            let mut head = at;
            let mut more = 0;
            loop {
                let (events, _) = shadow_batch(pool, &mut tx, &live, head).await?;
                for projection in projections {
                    projection.apply(&mut tx, &events).await?;
                }
                more += events.len() as u64;
                if let Some(last) = events.last() {
                    head = last.log_position();
                }
                if (events.len() as i64) < REBUILD_BATCH {
                    break;
                }
            }
            // The new tables' indexes get the live ones' names back (LIKE names them anew).
            let indexes: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT schemaname::text, tablename::text, indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname IN ($1, $2) AND tablename = ANY($3)",
            )
            .bind(&live)
            .bind(SHADOW_SCHEMA)
            .bind(&tables)
            .fetch_all(&mut *tx)
            .await?;
            let shape = |def: &str| {
                let unique = def.starts_with("CREATE UNIQUE");
                (unique, def.split_once(" USING ").map(|(_, rest)| rest.to_string()))
            };
            let mut renames = Vec::new();
            for (_, table, name, def) in indexes.iter().filter(|i| i.0 == SHADOW_SCHEMA) {
                let wanted = indexes.iter().find(|(s, t, _, d)| {
                    s == &live && t == table && shape(d) == shape(def)
                });
                if let Some((_, _, live_name, _)) = wanted.filter(|w| &w.2 != name) {
                    renames.push((name.clone(), live_name.clone()));
                }
            }
            // All the live tables at once, waiting only briefly: a reader may hold one of them
            // and wait for another (a join), and the swap must never be the other half of such
            // a cycle (PostgreSQL would break it by failing the reader's request). It gives up
            // instead, long before deadlock detection, and tries again.
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("\"{live}\".{t}"))
                .collect();
            sqlx::Executor::execute(
                &mut *tx,
                format!(
                    "SET LOCAL lock_timeout = '100ms'; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE; \
                     SET LOCAL lock_timeout = '2s';",
                    list.join(", ")
                )
                .as_str(),
            )
            .await?;
            let mut swap = String::new();
            for table in &tables {
                swap.push_str(&format!(
                    "DROP TABLE \"{live}\".{table}; ALTER TABLE {SHADOW_SCHEMA}.{table} SET SCHEMA \"{live}\";"
                ));
            }
            for (from, to) in &renames {
                swap.push_str(&format!(
                    "ALTER INDEX \"{live}\".\"{}\" RENAME TO \"{}\";",
                    from.replace('"', "\"\""),
                    to.replace('"', "\"\"")
                ));
            }
            sqlx::Executor::execute(&mut *tx, swap.as_str()).await?;
            sqlx::query(
                "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, \
                 rebuilds = rebuilds + 1 WHERE name = ANY($1)",
            )
            .bind(&names)
            .bind(head.transaction_id)
            .bind(head.position)
            .execute(&mut *tx)
            .await?;
            Ok((more, head))
        }
        .await;
        match swapped {
            Ok((more, _)) => {
                tx.commit().await?;
                applied += more;
                progress(applied, total.max(applied));
                return Ok(applied);
            }
            Err(ProjectionError::Database(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some("55P03") && tries < 100 =>
            {
                tx.rollback().await?;
                if tries % 10 == 0 {
                    tracing::warn!(tries, "readers held the live tables; trying the swap again");
                }
                tokio::time::sleep(std::time::Duration::from_millis(
                    20 + (tries % 7) as u64 * 10,
                ))
                .await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One batch of the log after `after` for the shadow tables: lists this transaction as one
/// that writes no events, and points its unqualified table names at the shadow schema.
async fn shadow_batch(
    pool: &PgPool,
    tx: &mut PgConnection,
    live: &str,
    after: LogPosition,
) -> Result<(Vec<StoredEvent>, i64), ProjectionError> {
    let horizon = horizon(&mut *tx).await?;
    build_beside(pool, tx, SHADOW_ENTRY, SHADOW_SCHEMA, live).await?;
    let events = read_events(&mut *tx, after, horizon, REBUILD_BATCH).await?;
    Ok((events, horizon))
}

/// Make `tx` a transaction that builds read models in `schema` beside the live ones: listed
/// in `projection_rebuilds` as `entry` (it writes no events, so nobody's horizon waits for it),
/// its unqualified table names pointing at `schema` first.
pub(crate) async fn build_beside(
    pool: &PgPool,
    tx: &mut PgConnection,
    entry: &str,
    schema: &str,
    live: &str,
) -> Result<(), sqlx::Error> {
    let me: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *tx)
        .await?;
    // On another connection, so that other consumers see it at once.
    sqlx::query(
        "INSERT INTO projection_rebuilds (name, transaction_id) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id",
    )
    .bind(entry)
    .bind(me)
    .execute(pool)
    .await?;
    sqlx::query(&format!("SET LOCAL search_path = {schema}, \"{live}\""))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What a consumer may read now after `after`: up to one batch of events in log order, below
/// the horizon. (The runner's own read, for tools and tests that follow the log.)
pub async fn events_after(
    pool: &PgPool,
    after: LogPosition,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let horizon = horizon(&mut conn).await?;
    read_batch(&mut conn, after, horizon).await
}

/// Up to one batch of the events after `after` in log order, below the horizon.
async fn read_batch(
    tx: &mut PgConnection,
    after: LogPosition,
    horizon: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    read_events(tx, after, horizon, BATCH).await
}

/// Up to `limit` events after `after` in log order, below the horizon.
async fn read_events(
    tx: &mut PgConnection,
    after: LogPosition,
    horizon: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT_EVENTS} WHERE (transaction_id, position) > ($1, $2) AND transaction_id < $3 \
         ORDER BY transaction_id, position LIMIT $4"
    ))
    .bind(after.transaction_id)
    .bind(after.position)
    .bind(horizon)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
}
