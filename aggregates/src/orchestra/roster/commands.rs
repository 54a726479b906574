use crate::orchestra::{EmailAddress, Role, Section};
use crate::personal::Sealed;

/// One line of a roster import, resolved by the caller against the reservations of names:
/// a member already enrolled, or a new one with an id drawn for them and their name sealed
/// with their new key (its blind set: enrolment reserves the name).
#[derive(Debug, Clone, PartialEq)]
pub enum RosterEntry {
    Known {
        member_id: u64,
        section: Section,
        role: Role,
    },
    New {
        member_id: u64,
        name: Sealed,
        section: Section,
        role: Role,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RosterCommand {
    /// Enrol new names and reassign changed ones; unchanged entries emit nothing.
    Import {
        entries: Vec<RosterEntry>,
    },
    /// Bind a member to a WeChat openid (sealed, with its blind) on first login; with
    /// `managers_wait`, a manager's first login only asks, and an operator approves.
    BindWechat {
        member_id: u64,
        openid: Sealed,
        managers_wait: bool,
    },
    /// Bind the member to the account whose request is pending (operator); `openid` is that
    /// request's, sealed again with its blind (the log never holds a blind).
    ApproveBinding {
        member_id: u64,
        openid: Sealed,
    },
    /// Forget a member's WeChat binding, or drop a request pending approval (operator).
    UnbindWechat {
        member_id: u64,
    },
    /// Erase a member (operator): off the roster, key destroyed.
    Forget {
        member_id: u64,
    },
    AddNotifyAddress {
        email: EmailAddress,
    },
    RemoveNotifyAddress {
        email: EmailAddress,
    },
    /// Every quota is full again.
    StartSeason,
}
