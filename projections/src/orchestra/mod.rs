//! Read models of the orchestra context.

mod absences;
mod mail;
mod roster;

pub use absences::AbsenceProjection;
pub use mail::MailOutbox;
pub use roster::RosterProjection;

use crate::{ProjectionError, StoredEvent};

fn decode<E: serde::de::DeserializeOwned>(
    event: &StoredEvent,
    aggregate_type: &str,
) -> Result<Option<E>, ProjectionError> {
    event
        .decode(aggregate_type)
        .map_err(|source| ProjectionError::Decode {
            position: event.position,
            source,
        })
}
