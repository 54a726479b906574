//! Read models of the orchestra context.

mod absences;
mod mail;
mod roster;

pub use absences::AbsenceProjection;
pub use mail::MailOutbox;
pub use roster::RosterProjection;
