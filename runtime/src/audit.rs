//! The auditors' and operators' views of the log, for the command line: the history in global
//! order, the hash chain's verdict, and where each projection stands. Generic: every aggregate
//! and projection is covered without code of its own.

use crate::chain::Verdict;
use crate::personal;
use crate::runner::{self as projections, LogPosition, Projection};
use crate::stored::StoredEvent;
use serde_json::json;
use sqlx::PgPool;

/// Which events `events list` shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// Only events after the one at this position, in log order.
    pub after: Option<i64>,
    pub limit: i64,
}

/// Sealed values that are secrets rather than personal data: (event, field). An auditor sees
/// that they were there, never what they were (a live verification code would let whoever
/// reads the audit views verify someone else's address).
const SECRETS: &[(&str, &str)] = &[("VerificationCodeIssued", "code")];

/// What an auditor reads in place of a secret.
pub const REDACTED: &str = "(redacted)";

fn redact_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            for (event, field) in SECRETS {
                if let Some(secret) = fields
                    .get_mut(*event)
                    .and_then(|payload| payload.get_mut(*field))
                {
                    *secret = serde_json::Value::String(REDACTED.into());
                }
            }
            fields.values_mut().for_each(redact_secrets);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// Personal values opened where their keys exist, `(erased)` where they were destroyed, and
/// secrets (verification codes) `(redacted)`: what an auditor reads. The log itself holds only
/// the sealed form.
async fn unseal(pool: &PgPool, values: &mut [&mut serde_json::Value]) -> Result<(), sqlx::Error> {
    for value in values.iter_mut() {
        redact_secrets(value);
    }
    let mut subjects = std::collections::BTreeSet::new();
    for value in values.iter() {
        personal::sealed_subjects(value, &mut subjects);
    }
    if subjects.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let keys = personal::KeySet::load(&mut conn, subjects.iter().map(String::as_str)).await?;
    for value in values.iter_mut() {
        personal::unseal_json(value, &keys);
    }
    Ok(())
}

/// Events in log order, their personal values left sealed as the log holds them (secrets
/// still `(redacted)`): what a subscription not granted personal data reads.
pub async fn sealed_events(
    pool: &PgPool,
    filter: &Filter,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut events = stored_events(pool, filter).await?;
    for e in &mut events {
        redact_secrets(&mut e.payload);
    }
    Ok(events)
}

/// Events in log order ((transaction, position): the order consumers follow), their personal
/// values opened.
pub async fn events(pool: &PgPool, filter: &Filter) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut events = stored_events(pool, filter).await?;
    let mut payloads: Vec<&mut serde_json::Value> =
        events.iter_mut().map(|e| &mut e.payload).collect();
    unseal(pool, &mut payloads).await?;
    Ok(events)
}

async fn stored_events(pool: &PgPool, filter: &Filter) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let after = match filter.after {
        Some(position) => sqlx::query_as::<_, LogPosition>(
            "SELECT transaction_id, position FROM events WHERE position = $1",
        )
        .bind(position)
        .fetch_optional(pool)
        .await?
        // A position that is not there (a hole): everything from the next one on.
        .unwrap_or(LogPosition {
            transaction_id: -1,
            position,
        }),
        // Everything, whatever its position (also rows slipped in below the real ones).
        None => LogPosition {
            transaction_id: -1,
            position: i64::MIN,
        },
    };
    // Only transactions that have ended (as the projections follow the log): a page never
    // shows a later commit before an earlier one still in flight, so paging by `next` misses
    // nothing.
    let mut conn = pool.acquire().await?;
    let horizon = projections::horizon(&mut conn).await?;
    // Without the event itself (no --after, or a hole), by position.
    let after_clause = if after.transaction_id >= 0 {
        "(transaction_id, position) > ($1, $2)"
    } else {
        "position > $2"
    };
    sqlx::query_as(&format!(
        "SELECT position, transaction_id, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata, recorded_at FROM events \
         WHERE ({after_clause}) AND transaction_id < $6 \
           AND ($3::text IS NULL OR aggregate_type = $3) \
           AND ($4::text IS NULL OR aggregate_id = $4) \
         ORDER BY transaction_id, position LIMIT $5"
    ))
    .bind(after.transaction_id)
    .bind(after.position)
    .bind(&filter.aggregate_type)
    .bind(&filter.aggregate_id)
    .bind(filter.limit)
    .bind(horizon)
    .fetch_all(&mut *conn)
    .await
}

/// What the console's history shows: the log newest first, narrowed by record, actor,
/// channel and time.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// The actor as the log names them (`orchestra-member:3`, `root`, …).
    pub actor: Option<String>,
    /// `http`, `cli`, …
    pub channel: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before the one at this position, in log order (the last of the previous
    /// page).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Events newest first (in reverse log order, within the horizon as [`events`]: a page never
/// shows a later commit while an earlier one is in flight), their personal values opened.
/// Walks the log's (transaction, position) index backwards; the filters narrow what it shows.
pub async fn newest(pool: &PgPool, search: &Search) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let before = match search.before {
        Some(position) => sqlx::query_as::<_, LogPosition>(
            "SELECT transaction_id, position FROM events WHERE position = $1",
        )
        .bind(position)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(LogPosition {
            transaction_id: i64::MAX,
            position,
        }),
        None => LogPosition {
            transaction_id: i64::MAX,
            position: i64::MAX,
        },
    };
    let horizon = projections::horizon(&mut conn).await?;
    let before_clause = if before.transaction_id < i64::MAX {
        "(transaction_id, position) < ($1, $2)"
    } else {
        "position < $2"
    };
    let mut events: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT position, transaction_id, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata, recorded_at FROM events \
         WHERE ({before_clause}) AND transaction_id < $3 \
           AND ($4::text IS NULL OR aggregate_type = $4) \
           AND ($5::text IS NULL OR aggregate_id = $5) \
           AND ($6::text IS NULL OR metadata->>'actor' = $6) \
           AND ($7::text IS NULL OR metadata->>'channel' = $7) \
           AND ($8::timestamptz IS NULL OR recorded_at >= $8) \
           AND ($9::timestamptz IS NULL OR recorded_at <= $9) \
         ORDER BY transaction_id DESC, position DESC LIMIT $10"
    ))
    .bind(before.transaction_id)
    .bind(before.position)
    .bind(horizon)
    .bind(&search.aggregate_type)
    .bind(&search.aggregate_id)
    .bind(&search.actor)
    .bind(&search.channel)
    .bind(search.from)
    .bind(search.to)
    .bind(search.limit)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let mut payloads: Vec<&mut serde_json::Value> =
        events.iter_mut().map(|e| &mut e.payload).collect();
    unseal(pool, &mut payloads).await?;
    Ok(events)
}

/// One event as a JSON line.
pub fn event_json(e: &StoredEvent) -> serde_json::Value {
    json!({
        "position": e.position,
        "transaction_id": e.transaction_id,
        "aggregate_type": e.aggregate_type,
        "aggregate_id": e.aggregate_id,
        "sequence": e.sequence,
        "event_type": e.event_type,
        "event_version": e.event_version,
        "payload": e.payload,
        "metadata": e.metadata,
        "recorded_at": e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// Events as aligned columns for a terminal.
pub fn event_table(events: &[StoredEvent]) -> String {
    let meta = |e: &StoredEvent, k: &str| {
        e.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let rows: Vec<[String; 8]> = events
        .iter()
        .map(|e| {
            [
                e.position.to_string(),
                e.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.aggregate_type.clone(),
                e.aggregate_id.clone(),
                e.sequence.to_string(),
                e.event_type.clone(),
                format!("{} {}", meta(e, "actor_kind"), meta(e, "actor")),
                format!("{} {}", meta(e, "channel"), meta(e, "request_id")),
            ]
        })
        .collect();
    let header = [
        "position",
        "recorded (UTC)",
        "type",
        "id",
        "seq",
        "event",
        "actor",
        "request",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Who the members and campus users among the actors of `events` are: their name as the read
/// models hold it (the placeholder once erased). Events carry only the opaque subject.
pub async fn actor_names(
    pool: &PgPool,
    events: &[StoredEvent],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    use aggregates::campus::users::user_of_subject;
    use aggregates::orchestra::roster::member_of_subject;
    let subjects: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.metadata.get("actor")?.as_str())
        .collect();
    let mut out = Vec::new();
    for subject in subjects {
        let (sql, id, missing) = if let Some(id) = member_of_subject(subject) {
            (
                "SELECT name FROM orchestra_members WHERE id = $1",
                id,
                "(not on the roster)",
            )
        } else if let Some(id) = user_of_subject(subject) {
            (
                "SELECT name FROM campus_users WHERE id = $1",
                id,
                "(unknown user)",
            )
        } else {
            continue;
        };
        let name: Option<String> = sqlx::query_scalar(sql)
            .bind(id as i64)
            .fetch_optional(pool)
            .await?;
        out.push((subject.to_string(), name.unwrap_or_else(|| missing.into())));
    }
    Ok(out)
}

/// Recompute the hash chain, and keep the verdict (`last_verification`) as run by `by`
/// (`cli`, `console:<subject>`); `progress(read, total)` after each page.
pub async fn verify(
    pool: &PgPool,
    by: &str,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verdict, projections::ProjectionError> {
    let started = chrono::Utc::now();
    let mut conn = pool.acquire().await?;
    let verdict = crate::chain::verify_with(&mut conn, progress).await?;
    let (checked, head, unchained, bad, reason) = match &verdict {
        Verdict::Intact {
            checked,
            head,
            unchained,
        } => (
            *checked as i64,
            head.as_ref().map(|(at, _)| at.position),
            *unchained as i64,
            None,
            None,
        ),
        Verdict::Broken { position, reason } => (0, None, 0, Some(*position), Some(*reason)),
    };
    sqlx::query(
        "INSERT INTO chain_verifications (started_at, intact, checked, head_position, \
         unchained, bad_position, reason, run_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(started)
    .bind(bad.is_none())
    .bind(checked)
    .bind(head)
    .bind(unchained)
    .bind(bad)
    .bind(reason)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    Ok(verdict)
}

/// A verdict of `events verify`, as kept.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Verification {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub intact: bool,
    pub checked: i64,
    pub head_position: Option<i64>,
    pub unchained: i64,
    pub bad_position: Option<i64>,
    pub reason: Option<String>,
    pub run_by: String,
}

/// The newest verdict of `events verify`, wherever it ran.
pub async fn last_verification(pool: &PgPool) -> Result<Option<Verification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT started_at, finished_at, intact, checked, head_position, unchained, \
         bad_position, reason, run_by FROM chain_verifications ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// Where a projection stands.
#[derive(Debug)]
pub struct Standing {
    pub name: &'static str,
    pub applied: LogPosition,
    /// Events committed after its checkpoint.
    pub lag: i64,
    /// Row count of each of its tables.
    pub rows: Vec<(&'static str, i64)>,
}

pub async fn standings(
    pool: &PgPool,
    projections: &[Box<dyn Projection>],
) -> Result<Vec<Standing>, sqlx::Error> {
    let mut out = Vec::new();
    for p in projections {
        let applied: LogPosition = sqlx::query_as(
            "SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1",
        )
        .bind(p.name())
        .fetch_optional(pool)
        .await?
        .unwrap_or_default();
        // Index-backed: events past the checkpoint in log order.
        let lag: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (transaction_id, position) > ($1, $2)",
        )
        .bind(applied.transaction_id)
        .bind(applied.position)
        .fetch_one(pool)
        .await?;
        let mut rows = Vec::new();
        for table in p.tables().iter().chain(p.kept_tables()) {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await?;
            rows.push((*table, n));
        }
        out.push(Standing {
            name: p.name(),
            applied,
            lag,
            rows,
        });
    }
    Ok(out)
}

/// How the state of each kind of aggregate is rebuilt from its events, by type name. One line
/// per aggregate type: the fold is generic.
fn folds() -> Vec<(&'static str, Fold)> {
    use aggregates::campus::catalog::{Addresses, Blocks, Categories, Entry};
    use aggregates::campus::feedback::Feedback;
    use aggregates::campus::organizations::Organization;
    use aggregates::campus::superusers::Superuser;
    use aggregates::campus::users::CampusUser;
    use aggregates::orchestra::absences::MemberAbsences;
    use aggregates::orchestra::roster::Roster;
    use cqrs_es::Aggregate;
    vec![
        (Roster::TYPE, fold::<Roster>),
        (MemberAbsences::TYPE, fold::<MemberAbsences>),
        (Superuser::TYPE, fold::<Superuser>),
        (CampusUser::TYPE, fold::<CampusUser>),
        (Organization::TYPE, fold::<Organization>),
        (Entry::<Blocks>::TYPE, fold::<Entry<Blocks>>),
        (Entry::<Categories>::TYPE, fold::<Entry<Categories>>),
        (Entry::<Addresses>::TYPE, fold::<Entry<Addresses>>),
        (Feedback::TYPE, fold::<Feedback>),
    ]
}

/// The states after the events whose indexes are in `wanted` (the fold applies them all, but
/// serialises only those: a long stream's history is paged, and its state now is one value).
type Fold = fn(&[StoredEvent], std::ops::Range<usize>) -> Result<Vec<serde_json::Value>, String>;

fn fold<A: cqrs_es::Aggregate>(
    events: &[StoredEvent],
    wanted: std::ops::Range<usize>,
) -> Result<Vec<serde_json::Value>, String> {
    let mut state = A::default();
    let mut states = Vec::with_capacity(wanted.len());
    for (i, e) in events.iter().enumerate().take(wanted.end) {
        let event = e
            .decode::<A::Event>(A::TYPE)
            .map_err(|err| err.to_string())?
            .ok_or_else(|| format!("event {} is not a {}", e.position, A::TYPE))?;
        state.apply(event);
        if wanted.contains(&i) {
            states.push(serde_json::to_value(&state).map_err(|e| e.to_string())?);
        }
    }
    Ok(states)
}

/// The aggregate types `events show` knows.
pub fn aggregate_types() -> Vec<&'static str> {
    folds().into_iter().map(|(t, _)| t).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unknown aggregate type {0:?} (known: {1})")]
    UnknownType(String, String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Unreadable(String),
}

/// The fold of a known aggregate type.
fn fold_of(aggregate_type: &str) -> Result<Fold, RecordError> {
    folds()
        .into_iter()
        .find(|(t, _)| *t == aggregate_type)
        .map(|(_, fold)| fold)
        .ok_or_else(|| {
            RecordError::UnknownType(aggregate_type.to_string(), aggregate_types().join(", "))
        })
}

/// How many events a record has (counted by the stream's key, nothing read or folded).
pub async fn stream_length(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<usize, RecordError> {
    fold_of(aggregate_type)?;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_one(pool)
    .await?;
    Ok(n as usize)
}

/// A record's events up to `as_of` (all if None), in order.
async fn stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(Fold, Vec<StoredEvent>), RecordError> {
    let fold = fold_of(aggregate_type)?;
    let events = sqlx::query_as(
        "SELECT position, transaction_id, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata, recorded_at FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 \
           AND ($3::timestamptz IS NULL OR recorded_at <= $3) \
         ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    Ok((fold, events))
}

/// The states after the events of `range` (a CPU-bound fold: off the request threads).
async fn states(
    fold: Fold,
    events: Vec<StoredEvent>,
    range: std::ops::Range<usize>,
) -> Result<(Vec<StoredEvent>, Vec<serde_json::Value>), RecordError> {
    tokio::task::spawn_blocking(move || fold(&events, range).map(|states| (events, states)))
        .await
        .map_err(|e| RecordError::Unreadable(e.to_string()))?
        .map_err(RecordError::Unreadable)
}

/// A record's history: the events of `page` (indexes into its stream, up to `as_of` if given),
/// each with the state after it, and how many events the stream has; personal values opened.
pub async fn history(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    page: std::ops::Range<usize>,
) -> Result<(Vec<(StoredEvent, serde_json::Value)>, usize), RecordError> {
    let (fold, events) = stream(pool, aggregate_type, aggregate_id, None).await?;
    let total = events.len();
    let page = page.start.min(total)..page.end.min(total);
    let (events, mut states) = states(fold, events, page.clone()).await?;
    let mut events = events[page].to_vec();
    let mut values: Vec<&mut serde_json::Value> =
        events.iter_mut().map(|e| &mut e.payload).collect();
    values.extend(states.iter_mut());
    unseal(pool, &mut values).await?;
    Ok((events.into_iter().zip(states).collect(), total))
}

/// A record as it stood at `as_of` (now if None): its state rebuilt from its events up to then
/// (Null if it had none), and those events; personal values opened.
pub async fn record(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(serde_json::Value, Vec<StoredEvent>), RecordError> {
    let (fold, events) = stream(pool, aggregate_type, aggregate_id, as_of).await?;
    let last = events.len().saturating_sub(1)..events.len();
    let (mut events, mut states) = states(fold, events, last).await?;
    let mut state = states.pop().unwrap_or(serde_json::Value::Null);
    let mut values: Vec<&mut serde_json::Value> =
        events.iter_mut().map(|e| &mut e.payload).collect();
    values.push(&mut state);
    unseal(pool, &mut values).await?;
    Ok((state, events))
}

/// A moment on the command line: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC) or a date (its end,
/// UTC).
pub fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let end = d
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .expect("a valid time");
        return Ok(Utc.from_utc_datetime(&end));
    }
    Err(format!(
        "{text:?} is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS in UTC, or YYYY-MM-DD)"
    ))
}
