use chrono::{DateTime, Duration, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{HasStoreEffects, Sealed, StoreEffect};

/// Reservation scope of campus users' WeChat openids (unrelated to the orchestra's).
pub const OPENID_SCOPE: &str = "campus-openid";
/// What an erased user is shown as.
pub const ERASED_USER: &str = "已注销用户";
/// How long a mailed code is good for.
pub const CODE_VALIDITY: Duration = Duration::minutes(10);
/// Wrong tries that burn a code.
pub const MAX_FAILURES: u8 = 5;

/// The key subject (and actor) of user `id`.
pub fn user_subject(id: u64) -> String {
    format!("campus-user:{id}")
}

pub fn user_of_subject(subject: &str) -> Option<u64> {
    subject.strip_prefix("campus-user:")?.parse().ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum UserEvent {
    UserRegistered {
        user_id: u64,
        openid: Sealed,
        name: Sealed,
        avatar: Option<Sealed>,
    },
    ProfileEdited {
        user_id: u64,
        name: Sealed,
        sign: Option<Sealed>,
    },
    VerificationCodeIssued {
        user_id: u64,
        email: Sealed,
        /// Sealed for the outbox, which mails it; tries are compared with its digest.
        code: Sealed,
        expires_at: DateTime<Utc>,
    },
    /// A wrong or expired try; the `failures`th on this code (the code is burnt at
    /// [`MAX_FAILURES`]).
    VerificationFailed {
        user_id: u64,
        failures: u8,
    },
    EmailVerified {
        user_id: u64,
        email: Sealed,
    },
    FollowStarted {
        user_id: u64,
        follow_id: u64,
        organization_id: u64,
    },
    FollowEnded {
        user_id: u64,
        follow_id: u64,
        organization_id: u64,
    },
    /// The user deleted their account (or a superuser did): their key is destroyed.
    UserDeleted {
        user_id: u64,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::ProfileEdited { .. } => "ProfileEdited",
            Self::VerificationCodeIssued { .. } => "VerificationCodeIssued",
            Self::VerificationFailed { .. } => "VerificationFailed",
            Self::EmailVerified { .. } => "EmailVerified",
            Self::FollowStarted { .. } => "FollowStarted",
            Self::FollowEnded { .. } => "FollowEnded",
            Self::UserDeleted { .. } => "UserDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl HasStoreEffects for UserEvent {
    fn store_effects(&self) -> Vec<StoreEffect> {
        match self {
            Self::UserRegistered {
                user_id, openid, ..
            } => openid
                .blind
                .map(|blind| StoreEffect::Claim {
                    scope: OPENID_SCOPE,
                    blind,
                    owner: user_subject(*user_id),
                })
                .into_iter()
                .collect(),
            // A superuser may follow for a user: not after the user's erasure.
            Self::FollowStarted { user_id, .. } => vec![StoreEffect::Require {
                subject: user_subject(*user_id),
            }],
            Self::UserDeleted { user_id } => vec![
                StoreEffect::Release {
                    scope: None,
                    owner: user_subject(*user_id),
                },
                StoreEffect::Shred {
                    subject: user_subject(*user_id),
                },
            ],
            _ => Vec::new(),
        }
    }
}
