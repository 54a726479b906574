//! The projector: the one task per process that applies the log to the read models. Commands
//! do not project for themselves: after its commit, a command nudges the projector and waits
//! (bounded) until the read models hold its events. The projector applies whatever has been
//! committed since its last pass in one transaction, so under load many commands share one
//! projection commit.
//!
//! Every pass runs on its own task, so a request that gives up waiting (or a client that hangs
//! up) never cuts a projection transaction in half.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::runner::{self as projections, CatchUp, LogPosition};
use sqlx::PgPool;
use tokio::sync::{watch, Mutex, Notify};

use crate::runner::Projections;

pub struct Projector {
    pool: PgPool,
    projections: Projections,
    /// Every event up to this position is in every read model (as last observed).
    applied: watch::Sender<LogPosition>,
    /// The highest position a command is waiting for, and until when (ms since `epoch`).
    wanted: std::sync::Mutex<LogPosition>,
    waiting_until: AtomicI64,
    epoch: std::time::Instant,
    wake: Notify,
    /// Woken after each pass that applied something (the mail worker listens).
    pub applied_something: Notify,
    /// A background loop is running ([`Projector::run`]); without one (the CLI), waiting
    /// commands start a pass themselves.
    running: AtomicBool,
    /// One pass at a time in this process, on a connection of its own: kept between passes
    /// (not the pool's: a pool checks every connection it gets back, one more round trip per
    /// pass). It is taken out for a pass and put back only when the pass ends well, so a pass
    /// cut short (a lost connection, a task dropped mid-way) never leaves it to the next one
    /// inside a transaction.
    pass_lock: Mutex<Option<sqlx::PgConnection>>,
    /// Every projection has its checkpoint row (made sure of by the first pass).
    checkpoints_ready: AtomicBool,
    /// This process's name on the `ensemble_events` channel (its own announcements are not
    /// news to it).
    me: String,
}

impl Projector {
    pub fn new(pool: PgPool, projections: Projections) -> Arc<Self> {
        Arc::new(Self {
            pool,
            projections,
            applied: watch::channel(LogPosition::default()).0,
            wanted: Default::default(),
            waiting_until: AtomicI64::new(0),
            epoch: std::time::Instant::now(),
            wake: Notify::new(),
            applied_something: Notify::new(),
            running: AtomicBool::new(false),
            pass_lock: Mutex::new(None),
            checkpoints_ready: AtomicBool::new(false),
            me: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    /// Apply what has been committed, then publish how far every read model is.
    pub async fn pass(self: &Arc<Self>) -> Result<CatchUp, projections::ProjectionError> {
        let mut held = self.pass_lock.lock().await;
        let mut conn = match held.take() {
            Some(conn) => conn,
            None => {
                use sqlx::ConnectOptions;
                self.pool.connect_options().connect().await?
            }
        };
        if !self.checkpoints_ready.load(Ordering::SeqCst) {
            projections::ensure_checkpoints(&mut conn, &self.projections).await?;
            self.checkpoints_ready.store(true, Ordering::SeqCst);
        }
        let done = projections::catch_up_all(&mut conn, &self.projections, Some(&self.me)).await?;
        let at = match done.position {
            Some(at) => at,
            None => projections::applied_position(&mut conn, &self.projections).await?,
        };
        *held = Some(conn);
        drop(held);
        // Not a maximum: the lowest checkpoint goes down when a rebuild commits behind it.
        self.applied.send_if_modified(|seen| {
            let moved = at != *seen;
            *seen = at;
            moved
        });
        if done.applied > 0 {
            // The other processes heard of it at the commit (`catch_up_all` announces it, once
            // per batch, not per command: appends never notify, as a NOTIFY holds a
            // database-wide lock until its commit is flushed; passes take turns anyway).
            self.applied_something.notify_waiters();
        }
        Ok(done)
    }

    /// Every event up to this position is in every read model, as this process last saw.
    pub fn applied(&self) -> LogPosition {
        *self.applied.borrow()
    }

    /// Whether commands of this process are waiting for the read models now (background work
    /// such as a replay for the time machine yields to them).
    pub fn busy(&self) -> bool {
        self.waiting_until.load(Ordering::SeqCst) > self.now_ms()
    }

    /// Ask for a pass soon.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Wait until every read model holds the event at `position`, at most `timeout`.
    /// Returns whether it does.
    pub async fn wait_for(self: &Arc<Self>, position: LogPosition, timeout: Duration) -> bool {
        let mut seen = self.applied.subscribe();
        if *seen.borrow() >= position {
            return true;
        }
        {
            let mut wanted = self.wanted.lock().unwrap();
            *wanted = (*wanted).max(position);
        }
        self.waiting_until
            .fetch_max(self.now_ms() + timeout.as_millis() as i64, Ordering::SeqCst);
        if self.running.load(Ordering::SeqCst) {
            self.nudge();
        } else {
            // No background loop (a CLI command): project on a task of its own.
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.pass().await {
                    tracing::error!(error = %e, "read models could not catch up");
                }
            });
        }
        tokio::time::timeout(timeout, seen.wait_for(|at| *at >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The background loop: a pass on every nudge, on every announcement of another process's
    /// pass and every `poll`; while commands wait for a position that another
    /// process is still projecting, it looks again every few milliseconds.
    pub async fn run(self: Arc<Self>, poll: Duration, heartbeat: crate::signals::Heartbeat) {
        self.running.store(true, Ordering::SeqCst);
        let _stop = StopOnDrop(&self.running);
        let mut listener = crate::signals::listen(&self.pool, "ensemble_events").await;
        let mut last_look = std::time::Instant::now();
        let mut warned: Option<(i32, std::time::Instant)> = None;
        loop {
            heartbeat.beat();
            if last_look.elapsed() >= HOLDER_LOOK_EVERY {
                last_look = std::time::Instant::now();
                self.warn_of_holder(&mut warned).await;
                // Housekeeping on the same clock: idempotent answers older than 24 h.
                if let Err(e) = crate::retries::expire(&self.pool).await {
                    tracing::debug!(error = %e, "could not expire idempotency keys");
                }
            }
            match self.pass().await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "read models could not catch up"),
            }
            heartbeat.beat();
            let behind = *self.wanted.lock().unwrap() > *self.applied.borrow()
                && self.waiting_until.load(Ordering::SeqCst) > self.now_ms();
            let wait = if behind {
                Duration::from_millis(5)
            } else {
                poll
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = crate::signals::notified(&mut listener, wait, &self.me) => {}
            }
        }
    }
}

/// How often the projector looks for a transaction holding the horizon back, and how old one
/// must be to be named in the log (then at most once a minute per session).
const HOLDER_LOOK_EVERY: Duration = Duration::from_secs(10);
const HOLDER_AGE_SECS: f64 = 30.0;

impl Projector {
    async fn warn_of_holder(&self, warned: &mut Option<(i32, std::time::Instant)>) {
        let Ok(mut conn) = self.pool.acquire().await else {
            return;
        };
        let Ok(Some(holder)) = projections::horizon_holder(&mut conn, HOLDER_AGE_SECS).await else {
            return;
        };
        if warned
            .is_some_and(|(pid, at)| pid == holder.pid && at.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        *warned = Some((holder.pid, std::time::Instant::now()));
        tracing::warn!(
            pid = holder.pid,
            application = %holder.application_name,
            state = %holder.state,
            seconds = holder.age as u64,
            "a long transaction holds back every read model and the mail: nothing committed \
             after it began is projected until it ends (end it, or set \
             idle_in_transaction_session_timeout)"
        );
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
