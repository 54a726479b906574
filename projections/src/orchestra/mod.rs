//! Read models of the orchestra context.

mod absences;
mod mail;
mod roster;

pub use absences::{AbsenceProjection, NOT_PROCESSED};
pub use mail::MailOutbox;
pub use roster::RosterProjection;
