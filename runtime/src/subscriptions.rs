//! Subscriptions: outside systems following the log. An operator creates one with a name, the
//! record types it may read and whether personal values are opened for it; its token is shown
//! once and only its SHA-256 is kept. A reader gets the events after a position in log order
//! ((transaction, position), within the horizon: an event that commits late is never skipped),
//! the same JSON as `events list`; acknowledges what it has handled; and holds a lease while it
//! reads, so that one reader at a time follows a subscription and another takes over when it
//! goes away.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::audit::{self, Filter};
use crate::stored::StoredEvent;

/// How long a reader's lease holds without renewal.
pub const LEASE_SECONDS: i64 = 30;
/// The longest batch a reader gets.
pub const MAX_BATCH: i64 = 1000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subscription {
    pub name: String,
    pub record_types: Vec<String>,
    pub personal: bool,
    pub acked_position: i64,
    pub acked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reader: Option<String>,
    pub reader_until: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Where batches are POSTed (None: readers come for them).
    pub webhook_url: Option<String>,
    pub webhook_failures: i32,
    pub webhook_next_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When its webhook was set aside after too many failures (until an operator retries it).
    pub webhook_dead_at: Option<chrono::DateTime<chrono::Utc>>,
    pub webhook_error: Option<String>,
}

impl Subscription {
    pub fn reads(&self, aggregate_type: &str) -> bool {
        self.record_types
            .iter()
            .any(|t| t == "*" || t == aggregate_type)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{0}")]
    Invalid(String),
    #[error("a subscription named {0:?} exists already")]
    Exists(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The event at `e.position` comes after the one subscription `s` acknowledged (in log
/// order), or it acknowledged none: what an acknowledgement needs to move `s` forward, never
/// back.
pub(crate) const MOVES_FORWARD: &str = "(s.acked_position = 0 OR (e.transaction_id, e.position) > \
     (SELECT a.transaction_id, a.position FROM events a WHERE a.position = s.acked_position))";

pub(crate) const COLUMNS: &str = "name, record_types, personal, acked_position, acked_at, reader, \
     reader_until, created_at, webhook_url, webhook_failures, webhook_next_at, webhook_dead_at, \
     webhook_error";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A name an operator may give: 1 to 64 of `a-z 0-9 - _`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Create a subscription reading `record_types` (`*`: all, else among `known`); its token,
/// shown once.
pub async fn create(
    pool: &PgPool,
    name: &str,
    record_types: &[String],
    known: &[&str],
    personal: bool,
) -> Result<String, SubscriptionError> {
    if !valid_name(name) {
        return Err(SubscriptionError::Invalid(
            "a name is 1 to 64 of a-z, 0-9, - and _".into(),
        ));
    }
    if record_types.is_empty() {
        return Err(SubscriptionError::Invalid(
            "name the record types it may read (--types MemberAbsences,Organization, or '*')"
                .into(),
        ));
    }
    if let Some(t) = record_types
        .iter()
        .find(|t| *t != "*" && !known.contains(&t.as_str()))
    {
        return Err(SubscriptionError::Invalid(format!(
            "{t:?} is not a record type (known: {})",
            known.join(", ")
        )));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("ens_sub_{}", crate::chain::hex(&bytes));
    let done = sqlx::query(
        "INSERT INTO subscriptions (name, token_sha256, record_types, personal) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(digest(&token))
    .bind(record_types)
    .bind(personal)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(SubscriptionError::Exists(name.into()));
    }
    Ok(token)
}

/// Deliver the subscription `name` to `url` by webhook from now on (None: no longer); returns
/// the new signing secret, shown once (every change of URL makes a new one). False-y (None
/// inside Ok) when there is no such subscription.
pub async fn set_webhook(
    pool: &PgPool,
    name: &str,
    url: Option<&str>,
) -> Result<Option<Option<String>>, SubscriptionError> {
    let url = url.map(webhook_url).transpose()?;
    let secret = url.as_ref().map(|_| {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        format!("ens_whsec_{}", crate::chain::hex(&bytes))
    });
    let done = sqlx::query(
        "UPDATE subscriptions SET webhook_url = $2, webhook_secret = $3, webhook_failures = 0, \
             webhook_next_at = NULL, webhook_dead_at = NULL, webhook_error = NULL \
         WHERE name = $1",
    )
    .bind(name)
    .bind(&url)
    .bind(secret.as_ref().map(|s| s.as_bytes().to_vec()))
    .execute(pool)
    .await?;
    Ok((done.rows_affected() == 1).then_some(secret))
}

/// Take up a webhook set aside as dead (or waiting out its backoff) at once: false if the
/// subscription has no webhook.
pub async fn retry_webhook(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE subscriptions SET webhook_failures = 0, webhook_next_at = NULL, \
             webhook_dead_at = NULL \
         WHERE name = $1 AND webhook_url IS NOT NULL",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An http(s) URL with a host, no user or password.
fn webhook_url(url: &str) -> Result<String, SubscriptionError> {
    match reqwest::Url::parse(url.trim()) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.as_str().len() <= 2000 =>
        {
            Ok(u.to_string())
        }
        _ => Err(SubscriptionError::Invalid(
            "a webhook is an http(s) URL with a host and no user or password".into(),
        )),
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<Subscription>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions ORDER BY name"
    ))
    .fetch_all(pool)
    .await
}

/// Delete a subscription: false if there was none.
pub async fn delete(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM subscriptions WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The subscription `name` if `token` is its token.
pub async fn authenticate(
    pool: &PgPool,
    name: &str,
    token: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE name = $1 AND token_sha256 = $2"
    ))
    .bind(name)
    .bind(digest(token))
    .fetch_optional(pool)
    .await
}

/// Take (or renew) the lease of `reader` on the subscription `token` opens: false while
/// another reader holds it, or once the subscription was deleted or created anew (another
/// token): a reader never holds what it was not given.
pub async fn claim(
    pool: &PgPool,
    name: &str,
    token: &str,
    reader: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE subscriptions SET reader = $2, reader_until = now() + interval '{LEASE_SECONDS} seconds' \
         WHERE name = $1 AND token_sha256 = $3 \
           AND (reader IS NULL OR reader = $2 OR reader_until < now())"
    ))
    .bind(name)
    .bind(reader)
    .bind(digest(token))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `reader` still holds the subscription `token` opens (not deleted, not created
/// anew, its lease not taken): checked before each batch a stream sends.
pub async fn holds(
    pool: &PgPool,
    name: &str,
    token: &str,
    reader: &str,
) -> Result<bool, sqlx::Error> {
    let held: Option<bool> = sqlx::query_scalar(
        "SELECT true FROM subscriptions WHERE name = $1 AND token_sha256 = $2 AND reader = $3",
    )
    .bind(name)
    .bind(digest(token))
    .bind(reader)
    .fetch_optional(pool)
    .await?;
    Ok(held.is_some())
}

/// Give the lease back (a reader that goes away).
pub async fn release(pool: &PgPool, name: &str, reader: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET reader = NULL, reader_until = NULL WHERE name = $1 AND reader = $2",
    )
    .bind(name)
    .bind(reader)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record that the subscription has handled everything up to the event at `position` (in log
/// order): never moves back. False if no event is at `position`.
pub async fn ack(pool: &PgPool, name: &str, position: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE subscriptions s SET acked_position = $2, acked_at = now() \
         FROM events e WHERE s.name = $1 AND e.position = $2 AND {MOVES_FORWARD}"
    ))
    .bind(name)
    .bind(position)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT position FROM events WHERE position = $1")
        .bind(position)
        .fetch_optional(pool)
        .await?;
    // An event before the one acknowledged already: nothing to move, and no error.
    Ok(exists.is_some())
}

/// A batch for `subscription`: the events after `after` (0: from the start) in log order, at
/// most `limit` scanned, those of its record types kept, personal values opened only if it was
/// granted them; and the position to ask after next (the last event scanned, kept or not).
pub async fn batch(
    pool: &PgPool,
    subscription: &Subscription,
    after: i64,
    limit: i64,
) -> Result<(Vec<StoredEvent>, i64), sqlx::Error> {
    let filter = Filter {
        after: (after > 0).then_some(after),
        limit: limit.clamp(1, MAX_BATCH),
        ..Filter::default()
    };
    // Only one record type: the store's index narrows the scan.
    let only = match subscription.record_types.as_slice() {
        [one] if one != "*" => Some(one.clone()),
        _ => None,
    };
    let filter = Filter {
        aggregate_type: only,
        ..filter
    };
    let events = if subscription.personal {
        audit::events(pool, &filter).await?
    } else {
        audit::sealed_events(pool, &filter).await?
    };
    let next = events.last().map(|e| e.position).unwrap_or(after);
    Ok((
        events
            .into_iter()
            .filter(|e| subscription.reads(&e.aggregate_type))
            .collect(),
        next,
    ))
}
