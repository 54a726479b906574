use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::runner::ProjectionError;

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
    pub fn log_position(&self) -> crate::runner::LogPosition {
        crate::runner::LogPosition {
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

pub(crate) const SELECT_EVENTS: &str =
    "SELECT position, transaction_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at FROM events";
