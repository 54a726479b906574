use chrono::NaiveDate;

use crate::orchestra::{AbsenceType, MemberName, Section};

/// What a member asks for: the fields of `POST /absence/` and `PUT /absence/<id>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsenceRequest {
    pub date: NaiveDate,
    pub kind: AbsenceType,
    pub reason: String,
}

/// `section` and `season` come from the roster as the request found it: the quota is the
/// section's, counted in that season.
#[derive(Debug, Clone, PartialEq)]
pub enum AbsenceCommand {
    Apply {
        applier: MemberName,
        section: Section,
        season: u64,
        request: AbsenceRequest,
    },
    Change {
        absence_id: u64,
        section: Section,
        season: u64,
        request: AbsenceRequest,
    },
    Cancel {
        absence_id: u64,
    },
    Process {
        absence_id: u64,
        processor: MemberName,
        result: String,
        permission: bool,
    },
}
