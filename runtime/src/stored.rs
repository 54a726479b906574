use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} does not decode: {source}")]
    Decode {
        position: i64,
        source: serde_json::Error,
    },
    #[error("projection {0} cannot be rebuilt")]
    NotRebuildable(&'static str),
    #[error("another rebuild is running on this database")]
    RebuildRunning,
}

/// Where an event sits in the log as consumers follow it: ordered by the writing
/// transaction's id, then by position. Consumers only read events of transactions older than
/// the oldest one still running (the horizon), so nothing can ever appear below what they
/// have seen, although positions may commit out of order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct LogPosition {
    pub transaction_id: i64,
    pub position: i64,
}

impl LogPosition {
    /// After every event there will ever be.
    pub const END: Self = Self {
        transaction_id: i64::MAX,
        position: i64::MAX,
    };
}

/// One row of the event store, as consumers read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub position: i64,
    /// The writing transaction: the log is followed in (transaction_id, position) order.
    pub transaction_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    pub fn log_position(&self) -> LogPosition {
        LogPosition {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }

    /// The payload as the domain event of aggregate type `aggregate_type` (upcast from an
    /// older version if need be), or None for events of other aggregates.
    pub fn decode<E: DeserializeOwned>(
        &self,
        aggregate_type: &str,
    ) -> Result<Option<E>, ProjectionError> {
        if self.aggregate_type != aggregate_type {
            return Ok(None);
        }
        let decoded =
            if aggregates::needs_upcast(aggregate_type, &self.event_type, &self.event_version) {
                E::deserialize(aggregates::upcast(
                    aggregate_type,
                    &self.event_type,
                    &self.event_version,
                    self.payload.clone(),
                ))
            } else {
                E::deserialize(&self.payload)
            };
        decoded.map(Some).map_err(|source| ProjectionError::Decode {
            position: self.position,
            source,
        })
    }
}

/// The events of the aggregate type `A` among `events`, decoded (through the upcasters), each
/// beside its stored form, in log order.
pub fn events_of<A: cqrs_es::Aggregate>(
    events: &[StoredEvent],
) -> Result<Vec<(&StoredEvent, A::Event)>, ProjectionError> {
    let mut decoded = Vec::new();
    for stored in events {
        if let Some(event) = stored.decode::<A::Event>(A::TYPE)? {
            decoded.push((stored, event));
        }
    }
    Ok(decoded)
}

pub(crate) const SELECT_EVENTS: &str =
    "SELECT position, transaction_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events";
