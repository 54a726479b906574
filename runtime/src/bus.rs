//! Executes commands against the event store. One place for what every command needs:
//! the actor and request in the metadata, per-aggregate serialisation with bounded waits, retry
//! on a concurrency conflict, and waiting (bounded) for the read models once the events are
//! committed. Each command runs on a task of its own, immune to the caller being dropped.
//!
//! The common case costs one statement and one commit: commands on one aggregate take turns
//! in this process, the aggregate's state is kept in memory between them, and the append
//! checks by the stream's primary key that nobody else (another process) wrote in between; if
//! someone did, the stream is loaded again and the command retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use sqlx::PgPool;

use crate::projector::Projector;
use crate::store::{self, LogPosition, StoreError};

/// Who asked, and through which request: written into every event's metadata.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `member`, `manager`, `operator`, ...
    pub kind: &'static str,
    pub name: String,
    /// Ours: the `x-request-id` of the response.
    pub request_id: String,
    /// The client's own `x-request-id`, when it sent a short, well-formed one.
    pub client_request_id: Option<String>,
    /// `http` or `cli`.
    pub channel: &'static str,
    /// The latest moment the command's append may start, so that it commits and is answered
    /// before the request's own deadline (None: no deadline but the command wait).
    pub append_by: Option<tokio::time::Instant>,
    /// The subject whose key must still exist for the command to commit (a campus user
    /// writing as themselves): their writes stop at their erasure's commit, even while the
    /// read models that check their token lag.
    pub requires: Option<String>,
    /// What the caller was taken to be when the command was decided, checked again by the
    /// append's own statement (see [`Holds`]); None: checked before, by the request.
    pub holds: Option<Holds>,
}

pub use crate::store::Holds;

impl Actor {
    pub fn operator() -> Self {
        let name = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self {
            kind: "operator",
            name,
            request_id: format!("cli-{}", uuid::Uuid::new_v4()),
            client_request_id: None,
            channel: "cli",
            append_by: None,
            requires: None,
            holds: None,
        }
    }

    fn metadata(&self) -> serde_json::Value {
        let mut metadata: HashMap<String, String> = HashMap::from([
            ("actor_kind".into(), self.kind.into()),
            ("actor".into(), self.name.clone()),
            ("request_id".into(), self.request_id.clone()),
            ("channel".into(), self.channel.into()),
        ]);
        if let Some(id) = &self.client_request_id {
            metadata.insert("client_request_id".into(), id.clone());
        }
        serde_json::to_value(metadata).expect("a map of strings is JSON")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The command broke a rule: the caller's fault.
    #[error(transparent)]
    Rejected(E),
    /// A unique index on the event store refused the events (a rule that spans aggregates,
    /// such as a name taken by another record). Never retried: only a conflict on the
    /// stream's own key is.
    #[error("a uniqueness rule refused the change")]
    Duplicate,
    /// A person the change names, or its author, was erased: nothing was written.
    #[error("a person this change names was erased")]
    Gone,
    /// The caller no longer holds what the command was decided on ([`Holds`]): nothing was
    /// written; look the caller up again.
    #[error("the caller changed")]
    CallerChanged,
    /// Too many commands for this record at once: the wait for its turn ran out. Nothing was
    /// written; the caller may try again.
    #[error("the record is busy")]
    Busy,
    /// The database connection was lost (a restart, an operator terminating sessions). If it
    /// happened during the append, the change may or may not have been made.
    #[error("the database was unavailable")]
    Unavailable,
    #[error("command failed: {0}")]
    Internal(String),
}

impl<E: std::error::Error> From<sqlx::Error> for CommandError<E> {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::connection_lost(&e) {
            tracing::warn!(error = %e, "database connection lost during a command");
            return Self::Unavailable;
        }
        match &e {
            sqlx::Error::PoolTimedOut => Self::Busy,
            // lock_not_available (lock_timeout) or query_canceled (statement_timeout): a wait
            // in the database ran out, and the statement was rolled back.
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("55P03" | "57014")) => {
                Self::Busy
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// Read models to catch up after each commit.
pub use crate::config::Waits;
pub use crate::runner::Projections;

/// What a command committed.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    pub events: Vec<A::Event>,
    /// The aggregate as these events left it: the truth to answer from, whether or not the
    /// read models have caught up yet.
    pub state: A,
    /// Where the last event is in the log (None when nothing was appended, or it could not be
    /// read back).
    pub position: Option<LogPosition>,
}

pub struct CommandBus<A: Aggregate> {
    inner: Arc<Inner<A>>,
}

struct Inner<A: Aggregate> {
    services: A::Services,
    /// The shape of `A`'s serialised state: bump it when the state's fields change, and old
    /// snapshots are ignored.
    state_version: i32,
    pool: PgPool,
    projector: Arc<Projector>,
    waits: Waits,
    /// One turn per aggregate in this process: a burst on one record queues here, in memory,
    /// and holds at most one connection, so it cannot starve everyone else's commands.
    turns: Turns,
    /// The last state this process committed or loaded for recently used aggregates. Only
    /// ever used by the holder of the aggregate's turn; a stale entry (another process wrote
    /// since) is caught by the append's primary key and reloaded.
    /// States kept between commands: at most [`CACHED`], the least useful going first
    /// (quick_cache's S3-FIFO); the size is in `/metrics` (`ensemble_cache_entries`).
    cache: Arc<quick_cache::sync::Cache<String, store::Loaded<A>>>,
    /// Its commands change who may do what (a binding, a role, a superuser): each waits for
    /// the standbys to replay it ([`crate::replicas::fence`]), as every erasure does.
    revoking: bool,
    /// How long that wait may last.
    fence: Duration,
}

/// Aggregates whose state is kept in memory between commands (per aggregate type).
const CACHED: usize = 10_000;

impl<A> CommandBus<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Event: aggregates::personal::HasStoreEffects,
    A::Services: Send + Sync + 'static,
{
    /// A bus on `runtime`'s pools, projector and waits.
    pub fn on(
        runtime: &crate::process::Runtime,
        services: A::Services,
        state_version: i32,
    ) -> Self {
        let mut bus = Self::new(
            runtime.pool.clone(),
            services,
            state_version,
            runtime.projector.clone(),
            runtime.config.waits,
        );
        if let Some(inner) = Arc::get_mut(&mut bus.inner) {
            inner.fence = runtime.config.read_max_lag + Duration::from_secs(1);
        }
        bus
    }

    /// Its commands change who may do what: each waits for the standbys to replay it.
    pub fn revoking(mut self) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.revoking = true;
        }
        self
    }

    pub fn new(
        pool: PgPool,
        services: A::Services,
        state_version: i32,
        projector: Arc<Projector>,
        waits: Waits,
    ) -> Self {
        let cache = Arc::new(quick_cache::sync::Cache::new(CACHED));
        crate::metrics::register_cache(A::TYPE, &cache);
        Self {
            inner: Arc::new(Inner {
                services,
                state_version,
                pool,
                projector,
                waits,
                turns: Default::default(),
                cache,
                revoking: false,
                fence: Duration::from_secs(6),
            }),
        }
    }

    /// Execute `command` on aggregate `id`, commit its events, wait (bounded) for the read
    /// models, and return what was committed. When this returns Ok the events are durable.
    ///
    /// The work runs on a task of its own: if the caller is dropped (a client hangs up), the
    /// command still runs to its end, and no transaction is ever cut in half.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<Committed<A>, CommandError<A::Error>>
    where
        A::Error: Send + 'static,
        A::Event: Send + 'static,
        A::Command: Send + 'static,
    {
        let inner = self.inner.clone();
        let id = id.to_string();
        let actor = actor.clone();
        let outcome = tokio::spawn(async move { inner.execute(&id, command, &actor).await })
            .await
            .unwrap_or_else(|e| Err(CommandError::Internal(format!("command task failed: {e}"))));
        if let Ok(Committed {
            position: Some(position),
            ..
        }) = &outcome
        {
            written(*position);
        }
        crate::metrics::command(
            A::TYPE,
            match &outcome {
                Ok(_) => "committed",
                Err(CommandError::Rejected(_)) => "rejected",
                Err(CommandError::Duplicate) => "duplicate",
                Err(CommandError::Gone) => "gone",
                Err(CommandError::CallerChanged) => "caller_changed",
                Err(CommandError::Busy) => "busy",
                Err(CommandError::Unavailable) => "unavailable",
                Err(CommandError::Internal(_)) => "internal",
            },
        );
        outcome
    }
}

impl<A> Inner<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
    A::Event: aggregates::personal::HasStoreEffects,
{
    async fn execute(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let (events, state, position) = self.commit(id, command, actor).await?;
        let projected = match position {
            _ if events.is_empty() => true,
            Some(position) => {
                self.projector
                    .wait_for(position, self.waits.projection)
                    .await
            }
            None => false,
        };
        if !projected {
            tracing::warn!(
                aggregate = A::TYPE,
                "read models did not catch up in time; answering from the committed events"
            );
        }
        // An erasure, or a change of who may do what, reaches the standbys before its answer.
        let erases = || {
            events.iter().any(|e| {
                aggregates::personal::HasStoreEffects::store_effects(e)
                    .iter()
                    .any(|x| matches!(x, aggregates::personal::StoreEffect::Shred { .. }))
            })
        };
        if !events.is_empty() && (self.revoking || erases()) {
            crate::replicas::fence(&self.pool, self.fence).await;
        }
        Ok(Committed {
            events,
            state,
            position,
        })
    }

    /// Take this aggregate's turn in this process, bounded.
    async fn turn(&self, id: &str) -> Result<Turn<'_>, CommandError<A::Error>> {
        let gate = self
            .turns
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        // Declared after `gate` is moved away, so that a wait that runs out still cleans up.
        let mut turn = Turn {
            turns: &self.turns,
            key: id.to_string(),
            held: None,
        };
        let held = tokio::time::timeout(self.waits.turn, gate.lock_owned())
            .await
            .map_err(|_| CommandError::Busy)?;
        turn.held = Some(held);
        Ok(turn)
    }

    /// Commit the command's events; returns them with the global position of the last one
    /// (None if it could not be read back: the events are committed all the same).
    async fn commit(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<(Vec<A::Event>, A, Option<LogPosition>), CommandError<A::Error>> {
        let own = tokio::time::Instant::now() + self.waits.turn;
        let deadline = actor.append_by.map_or(own, |request| request.min(own));
        let _turn = self.turn(id).await?;
        loop {
            match self.try_once(id, command.clone(), actor, deadline).await {
                Err(Attempt::Conflict) => {
                    // Another process wrote to this stream meanwhile: retry on a fresh load
                    // until the deadline (try_once refuses to append after it). The pause is
                    // short and random, never growing: a growing one would make a command
                    // that lost once lose again and again to the other process's fresh ones.
                    tokio::time::sleep(Duration::from_millis(1 + jitter())).await;
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(done) => return Ok(done),
            }
        }
    }

    /// Load (from memory when this process has the latest state), handle, append. A
    /// concurrent append by another process comes back as `Attempt::Conflict`, for the caller
    /// to retry on a fresh load.
    async fn try_once(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
        deadline: tokio::time::Instant,
    ) -> Result<(Vec<A::Event>, A, Option<LogPosition>), Attempt<A::Error>> {
        // Taken out of the cache: it goes back only if this command commits (a rejected
        // command may have applied some of its events to the state before refusing).
        let cached = self.cache.remove(id).map(|(_, loaded)| loaded);
        let from_cache = cached.is_some();
        let mut decided = self.decide(id, cached, command.clone()).await;
        if from_cache && !matches!(&decided, Ok((_, _, events)) if !events.is_empty()) {
            // A refusal or a no-op decided on the remembered state: another process may have
            // written since (an append would have caught that, a refusal does not). Decide
            // again on the stream as it is.
            decided = self.decide(id, None, command).await;
        }
        let (loaded, state, events) = decided?;
        if events.is_empty() {
            self.remember(id, state.clone(), loaded.sequence, loaded.snapshot_sequence);
            return Ok((events, state, None));
        }
        // The connection first, then the deadline: a wait for a connection must not carry an
        // append past the moment the caller stops waiting for it.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut conn = tokio::time::timeout(remaining, self.pool.acquire())
            .await
            .map_err(|_| Attempt::Failed(CommandError::Busy))?
            .map_err(|e| Attempt::Failed(e.into()))?;
        if tokio::time::Instant::now() >= deadline {
            // Too late to start a write that the caller may no longer be waiting for.
            return Err(Attempt::Failed(CommandError::Busy));
        }
        let snapshot = (loaded.sequence + events.len() - loaded.snapshot_sequence
            >= store::SNAPSHOT_EVERY)
            .then_some((&state, self.state_version));
        let position = store::append::<A>(
            &mut conn,
            id,
            loaded.sequence,
            &events,
            &actor.metadata(),
            snapshot,
            actor.requires.as_deref(),
            actor.holds.as_ref(),
        )
        .await
        .map_err(store_error)?;
        let sequence = loaded.sequence + events.len();
        let snapshot_sequence = if snapshot.is_some() {
            sequence
        } else {
            loaded.snapshot_sequence
        };
        self.remember(id, state.clone(), sequence, snapshot_sequence);
        Ok((events, state, Some(position)))
    }

    /// Handle `command` on the remembered state, or on the stream loaded now. Returns where
    /// the state came from (sequences; its state is moved out), the state after the events,
    /// and the events.
    #[allow(clippy::type_complexity)]
    async fn decide(
        &self,
        id: &str,
        cached: Option<store::Loaded<A>>,
        command: A::Command,
    ) -> Result<(store::Loaded<()>, A, Vec<A::Event>), Attempt<A::Error>> {
        let loaded = match cached {
            Some(loaded) => loaded,
            None => store::load::<A>(&self.pool, id, self.state_version)
                .await
                .map_err(store_error)?,
        };
        let mut state = loaded.state;
        let sink = Default::default();
        state
            .handle(command, &self.services, &sink)
            .await
            .map_err(|e| Attempt::Failed(CommandError::Rejected(e)))?;
        // `handle` applied its events as it wrote them: `state` is the state after them.
        let events = sink.collect().await;
        let from = store::Loaded {
            state: (),
            sequence: loaded.sequence,
            snapshot_sequence: loaded.snapshot_sequence,
        };
        Ok((from, state, events))
    }

    fn remember(&self, id: &str, state: A, sequence: usize, snapshot_sequence: usize) {
        self.cache.insert(
            id.to_string(),
            store::Loaded {
                state,
                sequence,
                snapshot_sequence,
            },
        );
    }
}

/// 0-7 ms at random.
fn jitter() -> u64 {
    rand::random::<u64>() % 8
}

/// How one try of a command ended badly.
enum Attempt<E: std::error::Error> {
    /// Another writer appended to the stream first: load again and retry.
    Conflict,
    Failed(CommandError<E>),
}

fn store_error<E: std::error::Error>(e: StoreError) -> Attempt<E> {
    Attempt::Failed(match e {
        StoreError::Conflict => return Attempt::Conflict,
        // A unique index refused the events: a rule that spans records.
        StoreError::Unique(_) => CommandError::Duplicate,
        StoreError::Gone => CommandError::Gone,
        StoreError::CallerChanged => CommandError::CallerChanged,
        StoreError::Database(e) => e.into(),
        e => CommandError::Internal(e.to_string()),
    })
}

type Turns = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// A place in an aggregate's in-process queue; the map entry goes when nobody else uses it.
struct Turn<'a> {
    turns: &'a Turns,
    key: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.held = None;
        let mut turns = self.turns.lock().unwrap();
        if turns
            .get(&self.key)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            turns.remove(&self.key);
        }
    }
}

tokio::task_local! {
    /// The highest log position the commands of a request committed at (see [`writing`]).
    static WRITTEN: std::cell::Cell<Option<LogPosition>>;
}

/// Run `request` noting where its commands commit: with it, the log position its answer
/// may promise (read-your-writes on standbys), None when it committed nothing.
pub async fn writing<F: std::future::Future>(request: F) -> (F::Output, Option<LogPosition>) {
    WRITTEN
        .scope(std::cell::Cell::new(None), async move {
            let out = request.await;
            (out, WRITTEN.with(|w| w.get()))
        })
        .await
}

fn written(position: LogPosition) {
    let _ = WRITTEN.try_with(|w| w.set(Some(w.get().map_or(position, |p| p.max(position)))));
}
