//! The roster: who is in the orchestra, their WeChat binding, who is mailed about new
//! absences, and the current season. One stream (id [`ROSTER_ID`]), so a whole roster import
//! commits atomically. Members are known by opaque ids; their names and openids are sealed
//! with their own keys, and the reservations of names and openids (keyed hashes, claimed in
//! the append's statement) keep both unique across racing logins and processes.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Roster, RosterMember, ROSTER_ID};
pub use commands::{RosterCommand, RosterEntry};
pub use error::RosterError;
pub use events::{RosterEvent, ROSTER_EVENT_VERSION};

/// Reservation scope of members' names.
pub const NAME_SCOPE: &str = "orchestra-name";
/// Reservation scope of WeChat openids bound to members.
pub const OPENID_SCOPE: &str = "orchestra-openid";

/// The key subject (and actor, and reservation owner) of member `id`.
pub fn member_subject(id: u64) -> String {
    format!("orchestra-member:{id}")
}

/// The member id of a subject written by [`member_subject`].
pub fn member_of_subject(subject: &str) -> Option<u64> {
    subject.strip_prefix("orchestra-member:")?.parse().ok()
}

/// What an erased member is called from then on.
pub fn former_member(id: u64) -> String {
    format!("former member #{id}")
}
