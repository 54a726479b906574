//! Executes commands against the event store. One place for what every command needs:
//! the actor and request in the metadata, per-aggregate serialisation, retry on a concurrency
//! conflict, and catching the read models up once the events are committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use projections::Projection;
use sqlx::PgPool;

/// Who asked, and through which request: written into every event's metadata.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `member`, `manager`, `operator`, ...
    pub kind: &'static str,
    pub name: String,
    pub request_id: String,
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
            channel: "cli",
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            ("actor_kind".into(), self.kind.into()),
            ("actor".into(), self.name.clone()),
            ("request_id".into(), self.request_id.clone()),
            ("channel".into(), self.channel.into()),
        ])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The command broke a rule: the caller's fault.
    #[error(transparent)]
    Rejected(E),
    /// A unique index on the event store refused the events (a rule that spans aggregates,
    /// such as a name taken by another record). postgres-es reports this as a concurrency
    /// conflict; the bus tells the two apart, and only real conflicts are retried.
    #[error("a uniqueness rule refused the change")]
    Duplicate,
    #[error("command failed: {0}")]
    Internal(String),
}

impl<E: std::error::Error> From<sqlx::Error> for CommandError<E> {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Read models to catch up after each commit.
pub type Projections = Arc<Vec<Box<dyn Projection>>>;

pub struct CommandBus<A: Aggregate> {
    store: PersistedEventStore<PostgresEventRepository, A>,
    services: A::Services,
    pool: PgPool,
    /// Connections that only wait for and hold aggregate locks. Kept apart from `pool` so a
    /// crowd of waiters can never take the connections the lock holder needs to commit.
    lock_pool: PgPool,
    projections: Projections,
}

const MAX_ATTEMPTS: usize = 20;

impl<A> CommandBus<A>
where
    A: Aggregate,
    A::Command: Clone,
{
    pub fn new(
        pool: PgPool,
        lock_pool: PgPool,
        services: A::Services,
        projections: Projections,
    ) -> Self {
        let store =
            PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()));
        Self {
            store,
            services,
            pool,
            lock_pool,
            projections,
        }
    }

    /// Execute `command` on aggregate `id`, commit its events, bring the read models up to
    /// date, and return the committed events. When this returns Ok the events are durable.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<Vec<A::Event>, CommandError<A::Error>> {
        let events = self.commit(id, command, actor).await?;
        if !events.is_empty() {
            if let Err(e) = projections::catch_up_all(&self.pool, &self.projections).await {
                // Committed all the same; the background catch-up will retry.
                tracing::error!(error = %e, "read models could not catch up after a commit");
            }
        }
        Ok(events)
    }

    async fn commit(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
    ) -> Result<Vec<A::Event>, CommandError<A::Error>> {
        // Commands on one aggregate queue up behind a transaction-scoped advisory lock, in this
        // process and in every other one on the database: racing requests wait their turn
        // instead of failing on the optimistic lock. The lock goes with the transaction, also
        // when this future is dropped half-way.
        let mut lock = self.lock_pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}/{}", A::TYPE, id))
            .execute(&mut *lock)
            .await?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let mut loaded_sequence = 0;
            match self
                .try_once(id, command.clone(), actor, &mut loaded_sequence)
                .await
            {
                Err(AggregateError::AggregateConflict) => {
                    if self.head(id).await? == loaded_sequence {
                        // Nobody else wrote to this stream: the violated constraint is another
                        // unique index, a rule that spans records.
                        break Err(CommandError::Duplicate);
                    }
                    if attempt >= MAX_ATTEMPTS {
                        break Err(CommandError::Internal(
                            "too many concurrent conflicts".into(),
                        ));
                    }
                    // Only a writer that bypasses the lock can get here; back off and retry.
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                Err(AggregateError::UserError(e)) => break Err(CommandError::Rejected(e)),
                Err(e) => break Err(CommandError::Internal(e.to_string())),
                Ok(events) => break Ok(events),
            }
        };
        lock.rollback().await?;
        result
    }

    /// The last sequence number committed on the stream (0 for a new one).
    async fn head(&self, id: &str) -> Result<usize, sqlx::Error> {
        let head: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(head as usize)
    }

    async fn try_once(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
        loaded_sequence: &mut usize,
    ) -> Result<Vec<A::Event>, AggregateError<A::Error>> {
        let mut context = self.store.load_aggregate(id).await?;
        *loaded_sequence = context.current_sequence;
        let sink = Default::default();
        context
            .aggregate()
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(events);
        }
        let committed = self.store.commit(events, context, actor.metadata()).await?;
        Ok(committed.into_iter().map(|e| e.payload).collect())
    }
}
