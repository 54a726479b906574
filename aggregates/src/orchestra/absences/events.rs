use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::orchestra::{AbsenceType, MemberName, Section};

/// Persisted contract: never rename a variant or a field; evolve with a new version and an
/// upcaster. Values the command computed (id, cost, season, application date) are recorded so
/// that projections never recompute them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AbsenceEvent {
    AbsenceApplied {
        absence_id: u64,
        applier: MemberName,
        section: Section,
        date: NaiveDate,
        kind: AbsenceType,
        reason: String,
        applied_on: NaiveDate,
        cost: u32,
        season: u64,
    },
    /// The member changed the request; any earlier decision no longer holds.
    AbsenceChanged {
        absence_id: u64,
        date: NaiveDate,
        kind: AbsenceType,
        reason: String,
        cost: u32,
        season: u64,
    },
    /// Gives the cost back to the season it was charged to.
    AbsenceCancelled { absence_id: u64 },
    AbsenceProcessed {
        absence_id: u64,
        processor: MemberName,
        result: String,
        permission: bool,
    },
}

impl DomainEvent for AbsenceEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AbsenceApplied { .. } => "AbsenceApplied",
            Self::AbsenceChanged { .. } => "AbsenceChanged",
            Self::AbsenceCancelled { .. } => "AbsenceCancelled",
            Self::AbsenceProcessed { .. } => "AbsenceProcessed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
