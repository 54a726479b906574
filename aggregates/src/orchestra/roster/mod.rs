//! The roster: who is in the orchestra, their WeChat binding, who is mailed about new
//! absences, and the current season. One stream (id [`ROSTER_ID`]), so a whole roster import
//! commits atomically and a WeChat id binds to one name only, even under racing logins.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Roster, RosterMember, ROSTER_ID};
pub use commands::{RosterCommand, RosterEntry};
pub use error::RosterError;
pub use events::RosterEvent;
