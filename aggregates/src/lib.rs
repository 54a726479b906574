//! The pure domain of Ensemble: aggregates, their commands, events and errors.
//!
//! Nothing here talks to a database, the network or the clock except through the
//! `Services` traits, which the tests replace.

pub mod campus;
pub mod orchestra;
pub mod personal;
pub mod text;

use std::collections::HashMap;
use std::sync::OnceLock;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

type Upcasters = HashMap<&'static str, Vec<Box<dyn EventUpcaster>>>;

fn upcasters() -> &'static Upcasters {
    static UPCASTERS: OnceLock<Upcasters> = OnceLock::new();
    UPCASTERS.get_or_init(|| {
        use cqrs_es::Aggregate;
        HashMap::from([(
            orchestra::absences::MemberAbsences::TYPE,
            orchestra::absences::upcasters(),
        )])
    })
}

/// Whether a stored event of this type and version is read through an upcaster.
pub fn needs_upcast(aggregate_type: &str, event_type: &str, event_version: &str) -> bool {
    upcasters()
        .get(aggregate_type)
        .is_some_and(|list| list.iter().any(|u| u.can_upcast(event_type, event_version)))
}

/// A stored event's payload as the current version of its type (cqrs-es's upcasters, applied
/// in order): every reader (aggregates, projections, audit views) goes through this, so old
/// events stay as they were written and are read as new ones.
pub fn upcast(
    aggregate_type: &str,
    event_type: &str,
    event_version: &str,
    payload: Value,
) -> Value {
    let Some(list) = upcasters().get(aggregate_type) else {
        return payload;
    };
    let mut event = SerializedEvent::new(
        String::new(),
        0,
        aggregate_type.to_string(),
        event_type.to_string(),
        event_version.to_string(),
        payload,
        Value::Null,
    );
    for upcaster in list {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    event.payload
}
