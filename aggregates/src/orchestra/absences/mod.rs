//! A member's absences: one stream per member (id = the member's roster id). The quota and
//! the one-absence-per-date rule live inside that stream, so optimistic concurrency on it makes
//! them hold when requests race: a loser conflicts, is retried, and then sees the winner.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{ActiveAbsence, Decision, MemberAbsences};
pub use commands::{AbsenceChange, AbsenceCommand, AbsenceRequest};
pub use error::AbsenceError;
pub use events::{upcasters, AbsenceEvent, Verdict, ABSENCE_EVENT_VERSION};
