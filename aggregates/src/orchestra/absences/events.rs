use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::orchestra::{AbsenceType, Section};
use crate::personal::{HasStoreEffects, Sealed};

/// Persisted contract: never rename a variant or a field; evolve with a new version and an
/// upcaster. Values the command computed (id, cost, season, application date) are recorded so
/// that projections never recompute them. Version 2.0: the applier and the processor by member
/// id, reasons and results sealed with the applier's key (1.0 held names and text in clear).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AbsenceEvent {
    AbsenceApplied {
        absence_id: u64,
        applier: u64,
        section: Section,
        date: NaiveDate,
        kind: AbsenceType,
        reason: Sealed,
        applied_on: NaiveDate,
        cost: u32,
        season: u64,
    },
    /// The member changed the request; any earlier decision no longer holds.
    AbsenceChanged {
        absence_id: u64,
        date: NaiveDate,
        kind: AbsenceType,
        reason: Sealed,
        cost: u32,
        season: u64,
    },
    /// Gives the cost back to the season it was charged to.
    AbsenceCancelled { absence_id: u64 },
    AbsenceProcessed {
        absence_id: u64,
        processor: u64,
        result: Sealed,
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
        ABSENCE_EVENT_VERSION.to_string()
    }
}

pub const ABSENCE_EVENT_VERSION: &str = "2.0";

/// Absences reserve nothing and destroy no key.
impl HasStoreEffects for AbsenceEvent {}
