//! Hot standbys that serve reads (`ENSEMBLE_READ_DATABASE_URL`): PostgreSQL's own streaming
//! replication, nothing home-made. This module only decides which standby may answer a read:
//!
//! - a monitor looks at every standby a few times a second (is it reachable, still a standby,
//!   is its replay paused, how far has it replayed, how far are its read models) and keeps in
//!   rotation those no more than `ENSEMBLE_READ_MAX_LAG` behind the primary; one that is down,
//!   paused or lagging is taken out, and comes back by itself once it is well again;
//! - a read that names a log position (read-your-writes: the `X-Ensemble-Position` of an
//!   earlier answer) goes to a standby whose read models hold it, waiting for one at most
//!   `ENSEMBLE_READ_WAIT`; otherwise the primary answers it.
//!
//! Lag is measured against the primary's WAL: every round samples the primary's flushed WAL
//! position with the time, and a standby that has replayed up to some point is as stale as the
//! time since the primary first went past that point. So a read without a position sees the
//! primary as it was at most `ENSEMBLE_READ_MAX_LAG` (plus one round) ago.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use crate::runner::{LogPosition, Projections};

/// How often the monitor looks when nobody waits, and when a read waits for a position.
const ROUND: Duration = Duration::from_millis(250);
const HURRIED_ROUND: Duration = Duration::from_millis(10);
/// A look at one standby that takes longer counts as a failure.
const LOOK_TIMEOUT: Duration = Duration::from_secs(1);
/// Primary WAL samples kept (about two minutes of rounds).
const SAMPLES: usize = 512;

/// A standby, as the monitor last saw it.
#[derive(Debug, Clone)]
pub struct Standing {
    /// `host:port/database` (never a password).
    pub name: String,
    pub in_rotation: bool,
    /// Why it is out of rotation (empty when in).
    pub reason: String,
    /// How long ago the primary was where this standby is now (None: not known).
    pub lag: Option<Duration>,
    /// WAL bytes the primary has flushed past what this standby has replayed.
    pub behind_bytes: u64,
    /// Every event up to this position is in every read model on the standby.
    pub applied: LogPosition,
    /// When it was last looked at.
    pub checked: Option<Instant>,
}

struct Member {
    pool: PgPool,
    standing: Mutex<Standing>,
}

pub struct Replicas {
    members: Vec<Member>,
    primary: Option<PgPool>,
    projections: Projections,
    max_lag: Duration,
    wait: Duration,
    next: AtomicUsize,
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Bumped after every round of the monitor.
    rounds: watch::Sender<u64>,
    /// Until when (ms since `epoch`) reads are waiting for positions: the monitor hurries.
    hurry_until: AtomicI64,
    epoch: Instant,
    wake: Notify,
}

impl Replicas {
    /// No standbys: the primary serves every read.
    pub fn none(projections: Projections) -> Self {
        Self::build(
            Vec::new(),
            None,
            projections,
            Duration::ZERO,
            Duration::ZERO,
        )
    }

    /// The standbys of `config`, with `primary` (a probe pool) to measure their lag against.
    pub fn new(
        config: &crate::Config,
        primary: PgPool,
        projections: Projections,
    ) -> anyhow::Result<Self> {
        let members = config
            .read_database_urls
            .iter()
            .map(|url| {
                Ok(Member {
                    pool: crate::db::standby_pool(url, config.pool_size, config.waits.turn)?,
                    standing: Mutex::new(Standing {
                        name: name_of(url),
                        in_rotation: false,
                        reason: "not looked at yet".into(),
                        lag: None,
                        behind_bytes: 0,
                        applied: LogPosition::default(),
                        checked: None,
                    }),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::build(
            members,
            Some(primary),
            projections,
            config.read_max_lag,
            config.read_wait,
        ))
    }

    fn build(
        members: Vec<Member>,
        primary: Option<PgPool>,
        projections: Projections,
        max_lag: Duration,
        wait: Duration,
    ) -> Self {
        Self {
            members,
            primary,
            projections,
            max_lag,
            wait,
            next: AtomicUsize::new(0),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            rounds: watch::channel(0).0,
            hurry_until: AtomicI64::new(0),
            epoch: Instant::now(),
            wake: Notify::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The pool of standby `i` (from [`Replicas::pick`]).
    pub fn pool(&self, i: usize) -> &PgPool {
        &self.members[i].pool
    }

    /// How many standbys there are (in rotation or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Every standby as last seen.
    pub fn standings(&self) -> Vec<Standing> {
        self.members
            .iter()
            .map(|m| m.standing.lock().unwrap().clone())
            .collect()
    }

    /// What the read models on standby `i` held when it was last looked at.
    pub fn applied(&self, i: usize) -> LogPosition {
        self.members[i].standing.lock().unwrap().applied
    }

    pub fn name(&self, i: usize) -> String {
        self.members[i].standing.lock().unwrap().name.clone()
    }

    /// A standby to answer a read that must see `wanted` (None: any in rotation), waiting for
    /// one at most `ENSEMBLE_READ_WAIT`; None: the primary answers.
    pub async fn pick(&self, wanted: Option<LogPosition>) -> Option<usize> {
        if self.members.is_empty() {
            return None;
        }
        if let Some(i) = self.ready(wanted) {
            return Some(i);
        }
        let wanted = wanted?;
        let mut rounds = self.rounds.subscribe();
        let deadline = tokio::time::Instant::now() + self.wait;
        self.hurry_until.fetch_max(
            self.now_ms() + self.wait.as_millis() as i64,
            Ordering::SeqCst,
        );
        self.wake.notify_one();
        loop {
            if !self.any_in_rotation() {
                return None;
            }
            match tokio::time::timeout_at(deadline, rounds.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
            if let Some(i) = self.ready(Some(wanted)) {
                return Some(i);
            }
        }
    }

    /// The next standby in rotation (round robin) whose read models hold `wanted`.
    fn ready(&self, wanted: Option<LogPosition>) -> Option<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| {
            let s = self.members[i].standing.lock().unwrap();
            s.in_rotation && wanted.is_none_or(|w| s.applied >= w)
        })
    }

    fn any_in_rotation(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.standing.lock().unwrap().in_rotation)
    }

    /// A read on standby `i` failed: out of rotation until the monitor has looked again.
    pub fn failed(&self, i: usize, why: &str) {
        let mut s = self.members[i].standing.lock().unwrap();
        if s.in_rotation {
            tracing::warn!(standby = %s.name, why, "a read on a standby failed; out of rotation until it looks well");
        }
        s.in_rotation = false;
        s.reason = format!("a read failed: {why}");
        drop(s);
        self.wake.notify_one();
    }

    /// Look at every standby, for ever: a few times a second, every 10 ms while a read waits.
    pub async fn monitor(self: Arc<Self>, heartbeat: crate::signals::Heartbeat) {
        if self.members.is_empty() {
            return std::future::pending().await;
        }
        loop {
            heartbeat.beat();
            self.round().await;
            self.rounds.send_modify(|n| *n += 1);
            let pause = if self.hurry_until.load(Ordering::SeqCst) > self.now_ms() {
                HURRIED_ROUND
            } else {
                ROUND
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// One look at the primary's WAL and at every standby.
    async fn round(&self) {
        let Some(primary) = &self.primary else { return };
        let primary = primary.clone();
        let flushed = tokio::spawn(async move {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT pg_current_wal_flush_lsn()::text, (SELECT generation FROM erasures)",
            )
            .fetch_one(&primary)
            .await
        });
        let looks: Vec<_> = self
            .members
            .iter()
            .map(|m| {
                let pool = m.pool.clone();
                let projections = self.projections.clone();
                tokio::spawn(async move { look(&pool, &projections).await })
            })
            .collect();
        let now = Instant::now();
        let erasures = match flushed.await {
            Ok(Ok((lsn, erasures))) => {
                if let Some(lsn) = parse_lsn(&lsn) {
                    let mut samples = self.samples.lock().unwrap();
                    if samples.len() == SAMPLES {
                        samples.pop_front();
                    }
                    samples.push_back((now, lsn));
                }
                erasures
            }
            // The primary does not answer: the standbys keep their standing (every request
            // fails or waits on the primary anyway).
            _ => return,
        };
        for (member, look) in self.members.iter().zip(looks) {
            let seen = match tokio::time::timeout(LOOK_TIMEOUT, look).await {
                Ok(Ok(Ok(seen))) => Ok(seen),
                Ok(Ok(Err(e))) => Err(format!("unreachable ({})", short(&e))),
                Ok(Err(_)) => Err("the look failed".into()),
                Err(_) => Err(format!("no answer within {LOOK_TIMEOUT:?}")),
            };
            self.judge(member, seen, now, erasures);
        }
    }

    fn judge(&self, member: &Member, seen: Result<Seen, String>, now: Instant, erasures: i64) {
        let mut s = member.standing.lock().unwrap();
        let was = s.in_rotation;
        s.checked = Some(now);
        match seen {
            Err(reason) => {
                s.in_rotation = false;
                s.reason = reason;
                s.lag = None;
            }
            Ok(seen) => {
                let (lag, behind) = self.lag_of(seen.replayed, now);
                s.lag = lag;
                s.behind_bytes = behind;
                s.applied = seen.applied;
                let reason = if !seen.standby {
                    "not a standby (promoted, or the primary itself)".to_string()
                } else if seen.paused {
                    "replay is paused".to_string()
                } else if seen.erasures < erasures {
                    // (A standby streaming from the primary is waited for by the erasure
                    // itself, [`fence`]; this catches one whose replication broke.)
                    "it has not replayed an erasure yet".to_string()
                } else if lag.is_none_or(|lag| lag > self.max_lag) {
                    format!(
                        "{} behind the primary (ENSEMBLE_READ_MAX_LAG is {:?})",
                        lag.map_or("too far".to_string(), |l| format!("{l:.1?}")),
                        self.max_lag
                    )
                } else {
                    String::new()
                };
                s.in_rotation = reason.is_empty();
                s.reason = reason;
            }
        }
        if was != s.in_rotation {
            if s.in_rotation {
                tracing::info!(standby = %s.name, "standby in rotation");
            } else {
                tracing::warn!(standby = %s.name, reason = %s.reason, "standby out of rotation");
            }
        }
    }

    /// How stale a standby that has replayed up to `replayed` is: the time since the primary
    /// first flushed past it (zero when it has everything the primary had a moment ago).
    fn lag_of(&self, replayed: u64, now: Instant) -> (Option<Duration>, u64) {
        let samples = self.samples.lock().unwrap();
        let Some(&(_, newest)) = samples.back() else {
            return (None, 0);
        };
        let behind = newest.saturating_sub(replayed);
        if behind == 0 {
            return (Some(Duration::ZERO), 0);
        }
        // The oldest sample past what it replayed: it has not seen the primary as of then.
        let first_past = samples.iter().find(|(_, lsn)| *lsn > replayed);
        let lag = first_past.map(|(at, _)| now.saturating_duration_since(*at));
        // Past every sample kept: at least as old as the oldest.
        (lag, behind)
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }
}

struct Seen {
    standby: bool,
    paused: bool,
    /// Erasures it has replayed (`erasures.generation`).
    erasures: i64,
    replayed: u64,
    applied: LogPosition,
}

async fn look(pool: &PgPool, projections: &Projections) -> Result<Seen, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (standby, paused, replayed, erasures): (bool, bool, Option<String>, i64) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), \
                CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
                pg_last_wal_replay_lsn()::text, (SELECT generation FROM erasures)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let applied = crate::runner::applied_position(&mut conn, projections).await?;
    Ok(Seen {
        standby,
        paused,
        erasures,
        replayed: replayed.as_deref().and_then(parse_lsn).unwrap_or(0),
        applied,
    })
}

/// Wait (at most `timeout`) until every standby streaming from the primary has replayed what
/// the primary has written so far: after an erasure or a change of who may do what, no standby
/// in sync serves the state before it. Standbys are seen in `pg_stat_replication`, so this
/// needs no configuration (and waits for standbys of other processes' configuration too); it
/// needs the role to see that view's positions (a superuser, or `pg_monitor`), else it sees no
/// standby and returns at once. A standby that does not catch up in time is further behind
/// than `ENSEMBLE_READ_MAX_LAG` by then, and out of rotation. False when it gave up.
pub async fn fence(pool: &PgPool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let run = async {
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(pool)
            .await?;
        loop {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication \
                 WHERE state IN ('streaming', 'catchup') \
                   AND (replay_lsn IS NULL OR replay_lsn < $1::pg_lsn)",
            )
            .bind(&lsn)
            .fetch_one(pool)
            .await?;
            if behind == 0 {
                return Ok::<bool, sqlx::Error>(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    match run.await {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(
                "a standby did not replay an erasure or a change of rights within {timeout:?}: \
                 it is out of rotation until it does"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not wait for the standbys to replay an erasure or a change of rights");
            false
        }
    }
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// What a standby is called in logs and metrics: host, port and database, never a password.
fn name_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "<unparsable>".into(),
    }
}

/// An error in a few words (a connection error's text names no secret).
fn short(e: &sqlx::Error) -> String {
    let text = e.to_string();
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_are_read_as_numbers() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert!(parse_lsn("16/B374D848") > parse_lsn("16/B374D847"));
        assert!(parse_lsn("17/0") > parse_lsn("16/FFFFFFFF"));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn names_never_hold_a_password() {
        assert_eq!(
            name_of("postgres://u:secret@db.example:5433/ensemble"),
            "db.example:5433/ensemble"
        );
    }

    #[tokio::test]
    async fn lag_is_the_time_since_the_primary_went_past_the_standby() {
        let replicas = Replicas::none(Arc::new(Vec::new()));
        let t0 = Instant::now();
        {
            let mut samples = replicas.samples.lock().unwrap();
            samples.push_back((t0, 100));
            samples.push_back((t0 + Duration::from_secs(1), 200));
            samples.push_back((t0 + Duration::from_secs(2), 300));
        }
        let now = t0 + Duration::from_secs(3);
        assert_eq!(replicas.lag_of(300, now), (Some(Duration::ZERO), 0));
        // Replayed 150: the primary was past it from the sample at 1 s (200).
        assert_eq!(
            replicas.lag_of(150, now),
            (Some(Duration::from_secs(2)), 150)
        );
        assert_eq!(
            replicas.lag_of(50, now),
            (Some(Duration::from_secs(3)), 250)
        );
    }
}
