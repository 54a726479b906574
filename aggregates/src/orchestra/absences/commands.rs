use chrono::NaiveDate;

use crate::orchestra::{AbsenceType, Section};
use crate::personal::Sealed;

/// What a member asks for: the fields of `POST /absence/` and `PUT /absence/<id>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsenceRequest {
    pub date: NaiveDate,
    pub kind: AbsenceType,
    /// Sealed with the applier's key.
    pub reason: Sealed,
}

/// The fields of `PUT /absence/<id>/`: each one left out keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AbsenceChange {
    pub date: Option<NaiveDate>,
    pub kind: Option<AbsenceType>,
    pub reason: Option<Sealed>,
}

impl From<AbsenceRequest> for AbsenceChange {
    fn from(r: AbsenceRequest) -> Self {
        Self {
            date: Some(r.date),
            kind: Some(r.kind),
            reason: Some(r.reason),
        }
    }
}

/// `section` and `season` come from the roster as the request found it: the quota is the
/// section's, counted in that season (for a change, in the absence's own season).
#[derive(Debug, Clone, PartialEq)]
pub enum AbsenceCommand {
    Apply {
        /// The applier's member id (the stream's).
        applier: u64,
        section: Section,
        season: u64,
        request: AbsenceRequest,
    },
    /// The absence stays charged to the season it was made in. Fields left out keep the
    /// values the stream holds when the command runs (not what a read model showed earlier).
    Change {
        absence_id: u64,
        section: Section,
        change: AbsenceChange,
    },
    Cancel {
        absence_id: u64,
    },
    Process {
        absence_id: u64,
        /// The manager's member id.
        processor: u64,
        /// Sealed with the applier's key: it is part of the applier's record.
        result: Sealed,
        permission: bool,
    },
}
