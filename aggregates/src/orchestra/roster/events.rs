use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::orchestra::{EmailAddress, MemberName, Role, Section};

/// Persisted contract: never rename a variant or a field; evolve with a new version and an
/// upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RosterEvent {
    MemberEnrolled {
        member_id: u64,
        name: MemberName,
        section: Section,
        role: Role,
    },
    MemberReassigned {
        name: MemberName,
        section: Section,
        role: Role,
    },
    WechatBound {
        name: MemberName,
        openid: String,
    },
    WechatUnbound {
        name: MemberName,
    },
    NotifyAddressAdded {
        email: EmailAddress,
    },
    NotifyAddressRemoved {
        email: EmailAddress,
    },
    SeasonStarted {
        season: u64,
    },
}

impl DomainEvent for RosterEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MemberEnrolled { .. } => "MemberEnrolled",
            Self::MemberReassigned { .. } => "MemberReassigned",
            Self::WechatBound { .. } => "WechatBound",
            Self::WechatUnbound { .. } => "WechatUnbound",
            Self::NotifyAddressAdded { .. } => "NotifyAddressAdded",
            Self::NotifyAddressRemoved { .. } => "NotifyAddressRemoved",
            Self::SeasonStarted { .. } => "SeasonStarted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
