use chrono::{DateTime, Utc};

use crate::personal::Sealed;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// `openid` carries its blind (the reservation).
    Register {
        user_id: u64,
        openid: Sealed,
        name: Sealed,
        avatar: Option<Sealed>,
    },
    /// `sign`: None keeps the one they have.
    EditProfile {
        name: Sealed,
        sign: Option<Sealed>,
    },
    /// Mail `code` to `email` (both sealed with the user's key; the code's digest is what a
    /// try is compared with).
    IssueCode {
        email: Sealed,
        code: Sealed,
        at: DateTime<Utc>,
    },
    /// A try: `email` and `code` sealed with the user's key, compared by digest.
    TryCode {
        email: Sealed,
        code: Sealed,
        at: DateTime<Utc>,
    },
    Follow {
        follow_id: u64,
        organization_id: u64,
    },
    Unfollow {
        organization_id: u64,
    },
    Delete,
}
