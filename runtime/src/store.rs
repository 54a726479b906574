//! Loading and appending aggregate streams: our own, on the `events` table that postgres-es
//! defined, so that one statement appends the events and the aggregate's snapshot together
//! and a unique violation says which rule it broke.

use aggregates::personal::{HasStoreEffects, StoreEffect};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::PgPool;

/// Write a snapshot once this many events have been added since the last one: loading reads
/// the snapshot and at most this many events.
pub const SNAPSHOT_EVERY: usize = 20;

/// A stream as loaded: the state and what it was built from.
#[derive(Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// The sequence of the last event in `state` (0 for a new stream).
    pub sequence: usize,
    /// The sequence of the snapshot it started from (0: none).
    pub snapshot_sequence: usize,
}

pub use crate::runner::LogPosition;

/// The facts about a caller that a command was decided on (a member's binding, role, section,
/// the season), taken from memory instead of a statement of their own, and checked by the
/// append's statement instead: `check` names a SQL function of one `jsonb` argument (a
/// migration defines it) that raises `EN002` when the facts no longer hold, and the append
/// then writes nothing (`StoreError::CallerChanged`; a command's
/// `CommandError::CallerChanged`). So a revocation committed anywhere (another process
/// unbinding a member) stops the caller's next write, and a command that commits was decided
/// on facts that held at its commit.
#[derive(Debug, Clone)]
pub struct Holds {
    pub check: &'static str,
    pub facts: serde_json::Value,
    /// Set once an append with these facts committed, or a fresh look-up found the caller:
    /// the caller was confirmed.
    confirmed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Holds {
    pub fn new(check: &'static str, facts: serde_json::Value) -> Self {
        Self {
            check,
            facts,
            confirmed: Default::default(),
        }
    }

    /// An append checked these facts and committed, or a look-up found the caller since.
    pub fn confirmed(&self) -> bool {
        self.confirmed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The caller was found as they are now: nothing more to check for this request.
    pub fn confirm(&self) {
        self.confirmed
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first (the primary key refused our sequence).
    #[error("concurrent append to the stream")]
    Conflict,
    /// Another unique index refused the events: a rule that spans streams.
    #[error("a uniqueness rule refused the events ({0})")]
    Unique(String),
    /// A person the events name, or their author, was erased ([`StoreEffect::Require`]).
    #[error("a person this change names was erased")]
    Gone,
    /// The caller no longer holds what the command was decided on ([`Holds`]).
    #[error("the caller no longer holds what the command was decided on")]
    CallerChanged,
    #[error("event or state does not (de)serialise: {0}")]
    Serde(#[from] serde_json::Error),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e {
            if d.code().as_deref() == Some("EN001") {
                return Self::Gone;
            }
            if d.code().as_deref() == Some("EN002") {
                return Self::CallerChanged;
            }
            if d.code().as_deref() == Some("23505") {
                let constraint = d.constraint().unwrap_or_default().to_string();
                return if constraint == "events_pkey" {
                    Self::Conflict
                } else {
                    Self::Unique(constraint)
                };
            }
        }
        Self::Database(e)
    }
}

/// The stream of `A` with id `id`: its latest snapshot of `state_version`, if any, and the
/// events after it.
pub async fn load<A: Aggregate>(
    pool: &PgPool,
    id: &str,
    state_version: i32,
) -> Result<Loaded<A>, StoreError> {
    let rows = fetch_stream::<A>(pool, id, state_version).await?;
    match fold::<A>(rows) {
        Ok(loaded) => Ok(loaded),
        Err(Unreadable::Snapshot(e)) => {
            // Rare: a state that no longer reads. Replay the whole stream instead.
            tracing::warn!(aggregate = A::TYPE, error = %e, "snapshot unreadable; replaying the stream");
            // No state has version -1: this reads the events alone.
            let rows = fetch_stream::<A>(pool, id, -1).await?;
            fold::<A>(rows).map_err(|e| match e {
                Unreadable::Snapshot(e) | Unreadable::Event(e) => StoreError::Serde(e),
            })
        }
        Err(Unreadable::Event(e)) => Err(StoreError::Serde(e)),
    }
}

enum Unreadable {
    Snapshot(serde_json::Error),
    Event(serde_json::Error),
}

/// A row of a stream as loaded: kind (0 snapshot, 1 event), sequence, event type and
/// version (empty for the snapshot), payload or state.
type StreamRow = (i32, i64, String, String, Value);

/// One round trip: the snapshot (kind 0), then the events after it (kind 1).
async fn fetch_stream<A: Aggregate>(
    pool: &PgPool,
    id: &str,
    state_version: i32,
) -> Result<Vec<StreamRow>, sqlx::Error> {
    sqlx::query_as(
        "WITH snap AS ( \
             SELECT last_sequence, state FROM aggregate_snapshots \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND state_version = $3 \
         ) \
         SELECT 0, last_sequence, '', '', state FROM snap \
         UNION ALL \
         SELECT 1, sequence, event_type, event_version, payload::jsonb FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 \
           AND sequence > coalesce((SELECT last_sequence FROM snap), 0) \
         ORDER BY 1, 2",
    )
    .bind(A::TYPE)
    .bind(id)
    .bind(state_version)
    .fetch_all(pool)
    .await
}

fn fold<A: Aggregate>(rows: Vec<StreamRow>) -> Result<Loaded<A>, Unreadable> {
    let mut rows = rows.into_iter().peekable();
    let mut state = A::default();
    let mut from = 0;
    if let Some((_, sequence, _, _, snapshot)) = rows.next_if(|row| row.0 == 0) {
        state = serde_json::from_value::<A>(snapshot).map_err(Unreadable::Snapshot)?;
        from = sequence as usize;
    }
    let mut sequence = from;
    for (_, seq, event_type, version, payload) in rows {
        let payload = aggregates::upcast(A::TYPE, &event_type, &version, payload);
        state.apply(serde_json::from_value::<A::Event>(payload).map_err(Unreadable::Event)?);
        sequence = seq as usize;
    }
    Ok(Loaded {
        state,
        sequence,
        snapshot_sequence: from,
    })
}

/// Append `events` after sequence `after`, with `metadata` on each, and, when `snapshot` is
/// given, the state they lead to, and what the events do to the reservations and keys
/// ([`StoreEffect`]): one statement, so all of it commits or none (a reservation already
/// held by someone else refuses the whole append; so does the erasure of a person the events
/// name, or of `author`; so does a caller who no longer `holds` what the command was decided
/// on). Returns the log position of the last event.
#[allow(clippy::too_many_arguments)]
pub async fn append<A>(
    conn: &mut sqlx::PgConnection,
    id: &str,
    after: usize,
    events: &[A::Event],
    metadata: &Value,
    snapshot: Option<(&A, i32)>,
    author: Option<&str>,
    holds: Option<&Holds>,
) -> Result<LogPosition, StoreError>
where
    A: Aggregate,
    A::Event: HasStoreEffects,
{
    let sequences: Vec<i64> = (1..=events.len()).map(|i| (after + i) as i64).collect();
    let types: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    let versions: Vec<String> = events.iter().map(DomainEvent::event_version).collect();
    let payloads: Vec<Value> = events
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let (state, state_version) = match snapshot {
        Some((state, version)) => (Some(serde_json::to_value(state)?), version),
        None => (None, 0),
    };
    let effects = Effects::of(
        events
            .iter()
            .flat_map(HasStoreEffects::store_effects)
            .chain(author.map(|subject| StoreEffect::Require {
                subject: subject.to_string(),
            })),
    );
    // What the statement does besides the events: nothing; only checks (what it requires is
    // alive, the caller holds: the common case of a command); or checks and changes.
    let shape = if effects.is_empty() && holds.is_none() {
        Shape::Plain
    } else if effects.checks_only() {
        Shape::Checked
    } else {
        Shape::Full
    };
    // The caller's facts are checked with the guard, after its locks and before anything is
    // written; the check's name is ours (a constant), never a client's. Its parameter comes
    // after the shape's own.
    let holds_sql =
        |n: usize| holds.map_or(String::new(), |h| format!(" AND {}(${n}::jsonb)", h.check));
    let (keys_first, after_keys, effects_sql) = match shape {
        Shape::Plain => (String::new(), "", ""),
        Shape::Checked => (
            CHECKS_FIRST.replace("{holds}", &holds_sql(14)),
            AFTER_CHECKS,
            "",
        ),
        Shape::Full => (
            KEYS_FIRST.replace("{holds}", &holds_sql(22)),
            AFTER_KEYS,
            EFFECTS,
        ),
    };
    let sql = format!(
        "WITH {keys_first}appended AS ( \
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT $1, $2, s, t, v, p::json, $7::json \
             FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[]) AS e(s, t, v, p) \
             {after_keys} \
             RETURNING transaction_id, position \
         ), snapshot AS ( \
             INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, last_sequence, state_version, state) \
             SELECT $1, $2, $8, $9, $10 WHERE $10::jsonb IS NOT NULL \
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                 SET last_sequence = excluded.last_sequence, state_version = excluded.state_version, state = excluded.state \
         ){effects_sql} \
         SELECT transaction_id, position FROM appended ORDER BY position DESC LIMIT 1"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(A::TYPE)
        .bind(id)
        .bind(&sequences)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(metadata)
        .bind(sequences.last().copied().unwrap_or(after as i64))
        .bind(state_version)
        .bind(state);
    match shape {
        Shape::Plain => {}
        Shape::Checked => {
            query = query
                .bind(effects.required)
                .bind(effects.held_scopes)
                .bind(effects.held_owners);
        }
        Shape::Full => {
            query = query
                .bind(effects.release_owners)
                .bind(effects.release_scopes)
                .bind(effects.claim_scopes)
                .bind(effects.claim_blinds)
                .bind(effects.claim_owners)
                .bind(effects.shred)
                .bind(effects.credential_subjects)
                .bind(effects.credential_hashes)
                .bind(effects.required)
                .bind(effects.held_scopes)
                .bind(effects.held_owners);
        }
    }
    if let Some(holds) = holds {
        query = query.bind(&holds.facts);
    }
    let (transaction_id, position): (i64, i64) = query.fetch_one(&mut *conn).await?;
    if let Some(holds) = holds {
        // One statement outside a transaction: it committed, and the caller was confirmed.
        holds.confirm();
    }
    Ok(LogPosition {
        transaction_id,
        position,
    })
}

/// What an append does to people's keys and records' reservations, before it writes anything
/// (migration 0012, `ensemble_guard`): advisory locks, exclusive on what it destroys or frees
/// (an erasure's key, a deletion's or rename's reservations), shared on what it needs alive
/// (`StoreEffect::Require`, `RequireHeld`), taken in one global order, then the checks that
/// what it needs is still there. An advisory lock needs no transaction id, so the append gets
/// its id (its place in the log) only once it holds its locks, and the lock manager queues
/// newcomers behind a waiting erasure: a change naming a person or a record is either wholly
/// before their erasure or deletion in the log, or waits for it and fails. Then the key is
/// destroyed and the reservations freed, then the events written. `{holds}`: the caller's
/// facts checked after the locks ([`Holds`]), or nothing.
const KEYS_FIRST: &str = "guard AS ( \
         SELECT ensemble_guard($16::text[] || $11::text[], $19::text[], $20::text[], $21::text[]){holds} AS ok \
     ), shredded AS ( \
         INSERT INTO personal_keys (subject, key, forgotten_at) \
         SELECT s, NULL, now() FROM unnest($16::text[]) AS s WHERE (SELECT ok FROM guard) \
         ON CONFLICT (subject) DO UPDATE \
             SET key = NULL, forgotten_at = coalesce(personal_keys.forgotten_at, now()) \
         RETURNING subject \
     ), released AS ( \
         DELETE FROM reservations r USING unnest($11::text[], $12::text[]) AS x(owner, scope) \
         WHERE (SELECT ok FROM guard) AND r.owner = x.owner AND (x.scope IS NULL OR r.scope = x.scope) \
         RETURNING r.owner \
     ), ";

/// An append that changes nothing but the events (and the snapshot) and only needs checks:
/// who it requires alive ($11), the reservations it requires held ($12, $13), the caller's
/// facts (`{holds}`), under the same locks as [`KEYS_FIRST`]; a statement of three parts
/// instead of ten (the common command: a campus user's, an orchestra member's).
const CHECKS_FIRST: &str = "guard AS ( \
         SELECT ensemble_guard('{}'::text[], $11::text[], $12::text[], $13::text[]){holds} AS ok \
     ), ";

/// The events' insert of [`CHECKS_FIRST`] runs only once the guard holds.
const AFTER_CHECKS: &str = "WHERE (SELECT ok FROM guard)";

/// The events' insert runs only once the guard holds and the keys and the released
/// reservations are dealt with (uncorrelated subqueries: run once, before the first row).
const AFTER_KEYS: &str = "WHERE (SELECT ok FROM guard) \
     AND (SELECT count(*) FROM shredded) >= 0 \
     AND (SELECT count(*) FROM released) >= 0";

/// The side-table writes of [`StoreEffect`]s, as more parts of the append's statement. An
/// erasure also drops the answers kept for safe retries (`idempotency_keys`) that may name the
/// person: their own, and every answer marked as naming others than its caller (the HTTP
/// layer marks them); retries of those writes then run again (in this domain they are refused
/// or change nothing). Others' answers stay, so nobody can empty the retry cache by erasing
/// an account of their own.
const EFFECTS: &str = ", claimed AS ( \
         INSERT INTO reservations (scope, blind, owner) \
         SELECT * FROM unnest($13::text[], $14::bytea[], $15::text[]) \
     ), uncredentialed AS ( \
         DELETE FROM credentials WHERE subject = ANY($16::text[]) \
     ), swept AS ( \
         DELETE FROM idempotency_keys WHERE cardinality($16::text[]) > 0 \
           AND (names_others OR subject = ANY($16::text[])) \
     ), counted AS ( \
         UPDATE erasures SET generation = generation + 1 WHERE cardinality($16::text[]) > 0 \
     ), credentialed AS ( \
         INSERT INTO credentials (subject, hash) \
         SELECT * FROM unnest($17::text[], $18::text[]) \
         ON CONFLICT (subject) DO UPDATE SET hash = excluded.hash \
     )";

/// What an append's statement holds besides the events.
#[derive(Clone, Copy)]
enum Shape {
    /// Nothing: the events and the snapshot.
    Plain,
    /// Checks: [`CHECKS_FIRST`].
    Checked,
    /// Checks and changes to keys, reservations and credentials: [`KEYS_FIRST`], [`EFFECTS`].
    Full,
}

#[derive(Default)]
struct Effects {
    release_owners: Vec<String>,
    release_scopes: Vec<Option<String>>,
    claim_scopes: Vec<String>,
    claim_blinds: Vec<Vec<u8>>,
    claim_owners: Vec<String>,
    shred: Vec<String>,
    credential_subjects: Vec<String>,
    credential_hashes: Vec<String>,
    required: Vec<String>,
    held_scopes: Vec<String>,
    held_owners: Vec<String>,
}

impl Effects {
    fn of(effects: impl Iterator<Item = StoreEffect>) -> Self {
        let mut out = Self::default();
        for effect in effects {
            match effect {
                StoreEffect::Claim {
                    scope,
                    blind,
                    owner,
                } => {
                    out.claim_scopes.push(scope.to_string());
                    out.claim_blinds.push(blind.0.to_vec());
                    out.claim_owners.push(owner);
                }
                StoreEffect::Release { scope, owner } => {
                    out.release_owners.push(owner);
                    out.release_scopes.push(scope.map(str::to_string));
                }
                StoreEffect::Shred { subject } => out.shred.push(subject),
                StoreEffect::Credential { subject, hash } => {
                    out.credential_subjects.push(subject);
                    out.credential_hashes.push(hash);
                }
                StoreEffect::Require { subject } => out.required.push(subject),
                StoreEffect::RequireHeld { scope, owner } => {
                    out.held_scopes.push(scope.to_string());
                    out.held_owners.push(owner);
                }
            }
        }
        out.settle()
    }

    /// An erasure needs no proof that its own subject is alive (and could not give one: its
    /// key row is changed by the same statement).
    fn settle(mut self) -> Self {
        let shred = self.shred.clone();
        self.required.retain(|s| !shred.contains(s));
        self.required.sort();
        self.required.dedup();
        self
    }

    /// Nothing to change besides the events: only what must be alive or held.
    fn checks_only(&self) -> bool {
        self.release_owners.is_empty()
            && self.claim_scopes.is_empty()
            && self.shred.is_empty()
            && self.credential_subjects.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.release_owners.is_empty()
            && self.claim_scopes.is_empty()
            && self.shred.is_empty()
            && self.credential_subjects.is_empty()
            && self.required.is_empty()
            && self.held_owners.is_empty()
    }
}
