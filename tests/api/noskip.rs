//! The no-skip checker: many writers whose transactions take their ids, write their events and
//! commit in shuffled orders (some held open far longer than the rest, some rolled back, some
//! cut by `pg_terminate_backend`), while every kind of follower of the log reads at once:
//! the server's own projector (the read models, the hash chain, the mail outbox), two more
//! "processes" sharing one checkpointed consumer, a blue/green rebuild of that consumer in the
//! middle, a reader of `runner::events_after`, an auditor paging `/audit/events/`'s query, and a
//! subscription's reader following its `next` (`runtime::subscriptions::batch`).
//! Afterwards every follower has seen every committed event exactly once, in one order (the
//! log's), and nothing that was never committed.
//!
//! Seeded: the seed is printed first (shown when the test fails) and taken from
//! `ENSEMBLE_NOSKIP_SEED`; `ENSEMBLE_NOSKIP_TRANSACTIONS` (default 3,000) sets how many writer
//! transactions (interleavings) a run makes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runtime::runner::{self, LogPosition, Projection, ProjectionError, Projections};
use runtime::stored::StoredEvent;
use sqlx::{PgConnection, PgPool};

use crate::helpers::spawn_app;

/// A consumer that writes down what it was given, in the order it was given it.
struct Recorder;

#[async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        "noskip_recorder"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["noskip_seen"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        if events.is_empty() {
            return Ok(());
        }
        let transactions: Vec<i64> = events.iter().map(|e| e.transaction_id).collect();
        let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
        sqlx::query(
            "INSERT INTO noskip_seen (n, transaction_id, position) \
             SELECT (SELECT coalesce(max(n), 0) FROM noskip_seen) + i, t, p \
             FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS e(t, p, i)",
        )
        .bind(&transactions)
        .bind(&positions)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One writer: `count` transactions, each a fresh interleaving drawn from `rng`.
async fn writer(pool: PgPool, killer: PgPool, me: usize, count: usize, mut rng: StdRng) -> usize {
    let mut committed = 0;
    for round in 0..count {
        let Ok(mut conn) = pool.acquire().await else {
            continue;
        };
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let outcome: Result<bool, sqlx::Error> = async {
            sqlx::query("BEGIN").execute(&mut *conn).await?;
            // Take the transaction id now, or only with the first event.
            if rng.random_bool(0.5) {
                sqlx::query("SELECT pg_current_xact_id()")
                    .execute(&mut *conn)
                    .await?;
            }
            pause(&mut rng, 3).await;
            for sequence in 1..=rng.random_range(1..=3i64) {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) \
                     VALUES ('Probe', $1, $2, 'Probed', '1.0', '{}', '{}')",
                )
                .bind(format!("w{me}-{round}"))
                .bind(sequence)
                .execute(&mut *conn)
                .await?;
                pause(&mut rng, 2).await;
            }
            // Most end at once; some are held open far longer than the others.
            let hold = match rng.random_range(0..100) {
                0 => rng.random_range(200..600),
                1..=9 => rng.random_range(20..80),
                _ => rng.random_range(0..5),
            };
            match rng.random_range(0..100) {
                // Cut from the outside while it holds its events.
                0..=1 => {
                    sqlx::query("SELECT pg_terminate_backend($1)")
                        .bind(pid)
                        .execute(&killer)
                        .await?;
                    // Counted only if it commits all the same (a race PostgreSQL may lose).
                    sqlx::query("COMMIT").execute(&mut *conn).await?;
                    Ok(true)
                }
                2..=5 => {
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                    Ok(false)
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    sqlx::query("COMMIT").execute(&mut *conn).await?;
                    Ok(true)
                }
            }
        }
        .await;
        match outcome {
            Ok(true) => committed += 1,
            Ok(false) => {}
            // The terminated ones: their connection is gone, never back in the pool.
            Err(_) => {
                conn.detach();
            }
        }
    }
    committed
}

async fn pause(rng: &mut StdRng, max_ms: u64) {
    let ms = rng.random_range(0..=max_ms);
    if ms == 0 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// `seen` must be the log itself: every event once, in its order. On failure, a short account
/// (what is missing, seen twice or out of order) rather than two lists of thousands.
fn same_as_log(seed: u64, follower: &str, seen: &[(i64, i64)], log: &[(i64, i64)]) {
    if seen == log {
        return;
    }
    let logged: std::collections::BTreeSet<_> = log.iter().collect();
    let mut counted = std::collections::BTreeMap::new();
    for event in seen {
        *counted.entry(event).or_insert(0) += 1;
    }
    let missing = logged.iter().filter(|e| !counted.contains_key(**e)).count();
    let twice = counted.values().filter(|n| **n > 1).count();
    let never = counted.keys().filter(|e| !logged.contains(**e)).count();
    let first = seen.iter().zip(log).position(|(a, b)| a != b);
    panic!(
        "seed {seed}: {follower} saw {} events, the log holds {}: {missing} missing, {twice} seen \
         more than once, {never} never committed; first difference at index {first:?} \
         (seen {:?}, log {:?})",
        seen.len(),
        log.len(),
        first.and_then(|i| seen.get(i)),
        first.and_then(|i| log.get(i)),
    );
}

/// The log as it is now, in the order consumers follow.
async fn log(pool: &PgPool) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT transaction_id, position FROM events ORDER BY transaction_id, position")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_follower_sees_every_committed_event_once_in_one_order() {
    let seed = setting("ENSEMBLE_NOSKIP_SEED").unwrap_or_else(rand::random);
    let transactions = setting("ENSEMBLE_NOSKIP_TRANSACTIONS").unwrap_or(3_000) as usize;
    eprintln!("no-skip checker: seed {seed}, {transactions} transactions (ENSEMBLE_NOSKIP_SEED={seed} to replay the schedule)");
    let app = spawn_app().await;
    let url = app.app.rt.config.database_url.clone();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE noskip_seen (n bigint PRIMARY KEY, transaction_id bigint NOT NULL, \
         position bigint NOT NULL UNIQUE)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let recorder: Projections = Arc::new(vec![Box::new(Recorder)]);
    {
        let mut conn = pool.acquire().await.unwrap();
        runner::ensure_checkpoints(&mut conn, &recorder)
            .await
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut followers = Vec::new();
    // Two "processes" catching the recorder up, sharing its checkpoint.
    for _ in 0..2 {
        let (pool, recorder, done) = (pool.clone(), recorder.clone(), done.clone());
        followers.push(tokio::spawn(async move {
            loop {
                let finished = done.load(Ordering::SeqCst);
                let mut conn = pool.acquire().await.unwrap();
                let pass = runner::catch_up_all(&mut conn, &recorder, None)
                    .await
                    .unwrap();
                if finished && !pass.skipped && pass.applied == 0 {
                    return;
                }
                if pass.applied == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    // A reader of the runner's own read, and an auditor paging the audit query: in memory.
    let reader = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut last = LogPosition::default();
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = runner::events_after(&pool, last).await.unwrap();
                for event in &batch {
                    last = event.log_position();
                    seen.push((event.transaction_id, event.position));
                }
                if finished && batch.is_empty() {
                    return seen;
                }
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let auditor = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut after = None;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let filter = runtime::audit::Filter {
                    after,
                    limit: 100,
                    ..Default::default()
                };
                let page = runtime::audit::events(&pool, &filter).await.unwrap();
                for event in &page {
                    after = Some(event.position);
                    seen.push((event.transaction_id, event.position));
                }
                if finished && page.is_empty() {
                    return seen;
                }
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    // A subscription's reader (what `GET /subscriptions/<name>/events` sends), following `next`.
    let token = runtime::subscriptions::create(&pool, "noskip", &["*".into()], &[], false)
        .await
        .unwrap();
    let subscription = runtime::subscriptions::authenticate(&pool, "noskip", &token)
        .await
        .unwrap()
        .unwrap();
    let subscriber = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let (events, next) =
                    runtime::subscriptions::batch(&pool, &subscription, after, 100)
                        .await
                        .unwrap();
                seen.extend(events.iter().map(|e| (e.transaction_id, e.position)));
                let idle = next == after;
                after = next;
                if finished && idle {
                    return seen;
                }
                if idle {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    // The writers, and a rebuild of the recorder once they are well under way.
    let killer = PgPool::connect(&url).await.unwrap();
    let writers: Vec<_> = (0..8usize)
        .map(|me| {
            let rng = StdRng::seed_from_u64(seed.wrapping_add(me as u64));
            let count = transactions / 8 + usize::from(me < transactions % 8);
            tokio::spawn(writer(pool.clone(), killer.clone(), me, count, rng))
        })
        .collect();
    let rebuild = {
        let pool = pool.clone();
        let first = Duration::from_millis(StdRng::seed_from_u64(seed).random_range(500..3_000));
        tokio::spawn(async move {
            tokio::time::sleep(first).await;
            let recorder = Recorder;
            runner::rebuild(&pool, &[&recorder], &|_, _| {})
                .await
                .unwrap()
        })
    };
    let mut committed = 0;
    for w in writers {
        committed += w.await.unwrap();
    }
    rebuild.await.unwrap();
    done.store(true, Ordering::SeqCst);
    for f in followers {
        f.await.unwrap();
    }
    let read = reader.await.unwrap();
    let audited = auditor.await.unwrap();
    let subscribed = subscriber.await.unwrap();
    let log = log(&pool).await;
    let probes: i64 = app
        .scalar("SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'Probe'")
        .await;
    assert_eq!(
        probes as usize, committed,
        "seed {seed}: committed transactions"
    );
    assert!(
        committed > transactions * 8 / 10,
        "seed {seed}: {committed}"
    );

    same_as_log(seed, "runner::events_after", &read, &log);
    same_as_log(seed, "the audit pages", &audited, &log);
    same_as_log(seed, "a subscription", &subscribed, &log);
    let recorded: Vec<(i64, i64)> =
        sqlx::query_as("SELECT transaction_id, position FROM noskip_seen ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap();
    same_as_log(
        seed,
        "the recorder (two processes and a rebuild)",
        &recorded,
        &log,
    );

    // The server's own projector: every read model, the chain and the outbox, caught up.
    let head = *log.last().unwrap();
    assert!(
        app.app
            .rt
            .projector
            .wait_for(
                LogPosition {
                    transaction_id: head.0,
                    position: head.1
                },
                Duration::from_secs(30)
            )
            .await,
        "seed {seed}: the server's projector caught up"
    );
    let linked: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, position FROM event_links ORDER BY transaction_id, position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    same_as_log(seed, "the hash chain", &linked, &log);
    match runtime::audit::verify(&pool, "test", &|_, _| {})
        .await
        .unwrap()
    {
        runtime::chain::Verdict::Intact {
            checked, unchained, ..
        } => {
            assert_eq!(checked as usize, log.len(), "seed {seed}");
            assert_eq!(unchained, 0, "seed {seed}");
        }
        broken => panic!("seed {seed}: the chain is broken: {broken:?}"),
    }
}
