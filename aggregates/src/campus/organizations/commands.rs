use chrono::{DateTime, Utc};

use crate::campus::catalog::Unique;
use crate::personal::Sealed;

/// Who sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    User(u64),
    Superuser,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationCommand {
    Submit {
        application_id: u64,
        name: Unique,
        /// Sealed with the applicant's key: free text they wrote.
        description: Sealed,
        applicant: u64,
        block: u64,
        at: DateTime<Utc>,
    },
    /// A superuser's verdict. The ids are drawn beforehand and used only on approval.
    /// Approve (founding the organisation with `description`, the application's reason as
    /// its applicant wrote it) or refuse.
    Decide {
        approve: bool,
        organization_id: u64,
        appointment_id: u64,
        description: Option<String>,
        at: DateTime<Utc>,
    },
    DeleteApplication {
        by: Caller,
    },
    /// `description`, `avatar`: None keeps what the organisation has (a field left out of
    /// the request), `Some("")` clears it.
    Edit {
        by: Caller,
        name: Unique,
        description: Option<String>,
        avatar: Option<String>,
    },
    TransferOwnership {
        by: Caller,
        to: u64,
        /// Used when the new owner is not a manager yet (an owner always is one).
        appointment_id: u64,
    },
    AppointManager {
        by: Caller,
        user: u64,
        appointment_id: u64,
    },
    DismissManager {
        by: Caller,
        user: u64,
    },
    Delete {
        by: Caller,
    },
}
