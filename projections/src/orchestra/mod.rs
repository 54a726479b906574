//! Read models of the orchestra context: each module is one read model, its projection and
//! its queries.

pub mod absences;
mod mail;
pub mod roster;

pub use absences::{AbsenceProjection, AbsenceRow, NOT_PROCESSED};
pub use mail::MailOutbox;
pub use roster::RosterProjection;
