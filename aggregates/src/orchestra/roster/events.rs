use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{member_subject, NAME_SCOPE, OPENID_SCOPE};
use crate::orchestra::{EmailAddress, Role, Section};
use crate::personal::{HasStoreEffects, Sealed, StoreEffect};

/// Persisted contract: never rename a variant or a field; evolve with a new version and an
/// upcaster. Version 2.0: members by opaque id, names and openids sealed (version 1.0 named
/// them in clear; `ensemble` rewrites such a store once, see src/personal_migration.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RosterEvent {
    MemberEnrolled {
        member_id: u64,
        name: Sealed,
        section: Section,
        role: Role,
    },
    MemberReassigned {
        member_id: u64,
        section: Section,
        role: Role,
    },
    /// The member's `binding`-th WeChat binding (tokens carry the number).
    WechatBound {
        member_id: u64,
        openid: Sealed,
        binding: u64,
    },
    /// The binding was dropped (or a request pending approval withdrawn).
    WechatUnbound {
        member_id: u64,
    },
    /// A manager's first login asks to bind this account; an operator's approval binds it
    /// (`ENSEMBLE_MANAGER_BINDING=approve`). Reserves nothing until then.
    WechatBindingRequested {
        member_id: u64,
        openid: Sealed,
    },
    /// Erasure: the member leaves the roster and their key is destroyed.
    MemberForgotten {
        member_id: u64,
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

pub const ROSTER_EVENT_VERSION: &str = "2.0";

impl DomainEvent for RosterEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MemberEnrolled { .. } => "MemberEnrolled",
            Self::MemberReassigned { .. } => "MemberReassigned",
            Self::WechatBound { .. } => "WechatBound",
            Self::WechatUnbound { .. } => "WechatUnbound",
            Self::WechatBindingRequested { .. } => "WechatBindingRequested",
            Self::MemberForgotten { .. } => "MemberForgotten",
            Self::NotifyAddressAdded { .. } => "NotifyAddressAdded",
            Self::NotifyAddressRemoved { .. } => "NotifyAddressRemoved",
            Self::SeasonStarted { .. } => "SeasonStarted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        ROSTER_EVENT_VERSION.to_string()
    }
}

impl HasStoreEffects for RosterEvent {
    fn store_effects(&self) -> Vec<StoreEffect> {
        let claim = |scope, sealed: &Sealed, member_id| {
            sealed.blind.map(|blind| StoreEffect::Claim {
                scope,
                blind,
                owner: member_subject(member_id),
            })
        };
        match self {
            Self::MemberEnrolled {
                member_id, name, ..
            } => claim(NAME_SCOPE, name, *member_id).into_iter().collect(),
            Self::WechatBound {
                member_id, openid, ..
            } => claim(OPENID_SCOPE, openid, *member_id)
                .into_iter()
                .collect(),
            Self::WechatUnbound { member_id } => vec![StoreEffect::Release {
                scope: Some(OPENID_SCOPE),
                owner: member_subject(*member_id),
            }],
            Self::MemberForgotten { member_id } => vec![
                StoreEffect::Release {
                    scope: None,
                    owner: member_subject(*member_id),
                },
                StoreEffect::Shred {
                    subject: member_subject(*member_id),
                },
            ],
            _ => Vec::new(),
        }
    }
}
