use chrono::NaiveDate;
use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Version 2.1: the decision is named (`verdict`); 2.0 said `permission: bool`, and is
    /// upcast on read (see [`upcasters`]).
    AbsenceProcessed {
        absence_id: u64,
        processor: u64,
        result: Sealed,
        verdict: Verdict,
    },
}

/// A manager's decision on an absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approved,
    Refused,
}

impl Verdict {
    pub fn of(permission: bool) -> Self {
        if permission {
            Self::Approved
        } else {
            Self::Refused
        }
    }

    pub fn permits(self) -> bool {
        self == Self::Approved
    }
}

/// How stored absence events of older versions are read as the current ones.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "AbsenceProcessed",
        "2.1",
        Box::new(|mut payload: Value| {
            if let Some(fields) = payload
                .get_mut("AbsenceProcessed")
                .and_then(Value::as_object_mut)
            {
                let permission = fields
                    .remove("permission")
                    .and_then(|p| p.as_bool())
                    .unwrap_or(false);
                fields.insert(
                    "verdict".into(),
                    serde_json::to_value(Verdict::of(permission)).expect("a verdict is JSON"),
                );
            }
            payload
        }),
    ))]
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

pub const ABSENCE_EVENT_VERSION: &str = "2.1";

/// Absences reserve nothing and destroy no key.
impl HasStoreEffects for AbsenceEvent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_0_decision_reads_as_a_named_verdict() {
        let stored = serde_json::json!({"AbsenceProcessed": {
            "absence_id": 7, "processor": 4, "permission": true,
            "result": {"key": "orchestra-member:3", "sealed": "x", "digest": "d"}
        }});
        let upcast = crate::upcast("MemberAbsences", "AbsenceProcessed", "2.0", stored);
        let event: AbsenceEvent = serde_json::from_value(upcast).unwrap();
        assert!(matches!(
            event,
            AbsenceEvent::AbsenceProcessed {
                absence_id: 7,
                processor: 4,
                verdict: Verdict::Approved,
                ..
            }
        ));
        // Current events pass unchanged; other types are left alone.
        assert!(!crate::needs_upcast(
            "MemberAbsences",
            "AbsenceProcessed",
            "2.1"
        ));
        assert!(!crate::needs_upcast(
            "MemberAbsences",
            "AbsenceApplied",
            "2.0"
        ));
        assert!(crate::needs_upcast(
            "MemberAbsences",
            "AbsenceProcessed",
            "2.0"
        ));
    }
}
