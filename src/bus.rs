//! Executes commands against the event store. One place for what every command needs:
//! the actor and request in the metadata, per-aggregate serialisation with bounded waits, retry
//! on a concurrency conflict, and waiting (bounded) for the read models once the events are
//! committed. Each command runs on a task of its own, immune to the caller being dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use projections::Projection;
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
}

impl Actor {
    pub fn operator() -> Self {
        let name = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self {
            kind: "operator",
            name,
            request_id: format!("cli-{}", uuid::Uuid::new_v4()),
            client_request_id: None,
            channel: "cli",
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
    /// Too many commands for this record at once: the wait for its turn ran out. Nothing was
    /// written; the caller may try again.
    #[error("the record is busy")]
    Busy,
    #[error("command failed: {0}")]
    Internal(String),
}

impl<E: std::error::Error> From<sqlx::Error> for CommandError<E> {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => Self::Busy,
            // lock_not_available: the advisory lock wait ran out (lock_timeout).
            sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03") => Self::Busy,
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// Read models to catch up after each commit.
pub type Projections = Arc<Vec<Box<dyn Projection>>>;

/// What a command committed.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    pub events: Vec<A::Event>,
    /// The aggregate as these events left it: the truth to answer from, whether or not the
    /// read models have caught up yet.
    pub state: A,
}

/// Bounds on the waits of a command.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For its turn on the aggregate (in this process, then across processes).
    pub turn: Duration,
    /// For the read models to hold its events after the commit.
    pub projection: Duration,
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
    /// Connections that only wait for and hold aggregate locks. Kept apart from `pool` so a
    /// crowd of waiters can never take the connections the lock holder needs to commit.
    lock_pool: PgPool,
    projector: Arc<Projector>,
    waits: Waits,
    /// One turn per aggregate in this process: a burst on one record queues here, in memory,
    /// and holds at most one lock connection, so it cannot starve everyone else's commands.
    turns: Turns,
}

const MAX_ATTEMPTS: usize = 20;

impl<A> CommandBus<A>
where
    A: Aggregate + 'static,
    A::Command: Clone,
    A::Services: Send + Sync + 'static,
{
    pub fn new(
        pool: PgPool,
        lock_pool: PgPool,
        services: A::Services,
        state_version: i32,
        projector: Arc<Projector>,
        waits: Waits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                services,
                state_version,
                pool,
                lock_pool,
                projector,
                waits,
                turns: Default::default(),
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
        tokio::spawn(async move { inner.execute(&id, command, &actor).await })
            .await
            .unwrap_or_else(|e| Err(CommandError::Internal(format!("command task failed: {e}"))))
    }
}

impl<A> Inner<A>
where
    A: Aggregate,
    A::Command: Clone,
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
        Ok(Committed { events, state })
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
        let _turn = self.turn(id).await?;
        // Across processes, commands on one aggregate queue up behind a transaction-scoped
        // advisory lock: racing requests wait their turn instead of failing on the optimistic
        // lock. The wait is bounded by lock_timeout.
        // One message: BEGIN, the bound on the wait, the lock. (If this task were ever dropped
        // in between, the pool closes the connection instead of reusing it: src/db.rs.)
        let mut lock = self.lock_pool.acquire().await?;
        let take = format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'; SELECT pg_advisory_xact_lock({});",
            self.waits.turn.as_millis().max(1),
            lock_key(A::TYPE, id)
        );
        // A query without arguments goes by the simple protocol, several statements at once.
        sqlx::Executor::execute(&mut *lock, take.as_str()).await?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.try_once(id, command.clone(), actor).await {
                Err(Attempt::Conflict) => {
                    if attempt >= MAX_ATTEMPTS {
                        break Err(CommandError::Internal(
                            "too many concurrent conflicts".into(),
                        ));
                    }
                    // Only a writer that bypasses the lock can get here; back off and retry.
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                Err(Attempt::Failed(e)) => break Err(e),
                Ok(done) => break Ok(done),
            }
        };
        // Whatever happens to the lock connection now, the outcome stands: a lost connection
        // released the lock already.
        if let Err(e) = sqlx::Executor::execute(&mut *lock, "ROLLBACK").await {
            tracing::warn!(error = %e, "aggregate lock connection lost after the command");
        }
        result
    }

    /// Load, handle, append. A concurrent append (possible only for a writer that bypasses
    /// the lock) comes back as `Attempt::Conflict`, for the caller to retry.
    async fn try_once(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<(Vec<A::Event>, A, Option<LogPosition>), Attempt<A::Error>> {
        let loaded = store::load::<A>(&self.pool, id, self.state_version)
            .await
            .map_err(store_error)?;
        let mut state = loaded.state;
        let sink = Default::default();
        state
            .handle(command, &self.services, &sink)
            .await
            .map_err(|e| Attempt::Failed(CommandError::Rejected(e)))?;
        // `handle` applied its events as it wrote them: `state` is the state after them.
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok((events, state, None));
        }
        let snapshot = (loaded.sequence + events.len() - loaded.snapshot_sequence
            >= store::SNAPSHOT_EVERY)
            .then_some((&state, self.state_version));
        let position = store::append::<A>(
            &self.pool,
            id,
            loaded.sequence,
            &events,
            &actor.metadata(),
            snapshot,
        )
        .await
        .map_err(store_error)?;
        Ok((events, state, Some(position)))
    }
}

/// The advisory-lock key of an aggregate: FNV-1a of `type/id`, the same in every process.
/// (A number, so no text of the id ever reaches the SQL.)
fn lock_key(aggregate_type: &str, id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in aggregate_type.bytes().chain([b'/']).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
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
