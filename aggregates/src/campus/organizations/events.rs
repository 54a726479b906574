use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::campus::catalog::{entry_owner, Blocks, Catalog};
use crate::campus::users::user_subject;
use crate::personal::{Blind, HasStoreEffects, Sealed, StoreEffect};

/// Reservation scope of organisation names (pending applications and organisations).
pub const ORG_NAME_SCOPE: &str = "campus-organization-name";

/// The owner of an application's or organisation's reservations.
pub fn application_owner(application_id: u64) -> String {
    format!("campus-application:{application_id}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum OrganizationEvent {
    ApplicationSubmitted {
        application_id: u64,
        name: String,
        description: Sealed,
        applicant: u64,
        block: u64,
        submitted_at: DateTime<Utc>,
        #[serde(skip)]
        blind: Option<Blind>,
    },
    /// Founds the organisation: `owner` (the applicant) owns it and is its first manager
    /// (appointment `appointment_id`).
    ApplicationApproved {
        application_id: u64,
        organization_id: u64,
        name: String,
        /// The organisation's first description: the application's reason (in clear, as an
        /// organisation's descriptions are). Absent from approvals recorded before it was kept.
        #[serde(default)]
        description: Option<String>,
        owner: u64,
        block: u64,
        appointment_id: u64,
        founded_at: DateTime<Utc>,
    },
    ApplicationRefused {
        application_id: u64,
    },
    /// The application is deleted from the lists; a pending one is withdrawn (its name freed).
    ApplicationDeleted {
        application_id: u64,
        was_pending: bool,
    },
    OrganizationEdited {
        organization_id: u64,
        application_id: u64,
        name: String,
        description: Option<String>,
        avatar: Option<String>,
        /// The new name's reservation, when the name changed.
        #[serde(skip)]
        blind: Option<Blind>,
    },
    OwnershipTransferred {
        organization_id: u64,
        from: u64,
        to: u64,
        /// The new owner's appointment as manager, when they were not one.
        appointment_id: Option<u64>,
    },
    ManagerAppointed {
        organization_id: u64,
        appointment_id: u64,
        user: u64,
    },
    ManagerDismissed {
        organization_id: u64,
        appointment_id: u64,
        user: u64,
    },
    OrganizationDeleted {
        organization_id: u64,
        application_id: u64,
    },
}

impl DomainEvent for OrganizationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ApplicationSubmitted { .. } => "ApplicationSubmitted",
            Self::ApplicationApproved { .. } => "ApplicationApproved",
            Self::ApplicationRefused { .. } => "ApplicationRefused",
            Self::ApplicationDeleted { .. } => "ApplicationDeleted",
            Self::OrganizationEdited { .. } => "OrganizationEdited",
            Self::OwnershipTransferred { .. } => "OwnershipTransferred",
            Self::ManagerAppointed { .. } => "ManagerAppointed",
            Self::ManagerDismissed { .. } => "ManagerDismissed",
            Self::OrganizationDeleted { .. } => "OrganizationDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl HasStoreEffects for OrganizationEvent {
    fn store_effects(&self) -> Vec<StoreEffect> {
        let release = |id: u64| StoreEffect::Release {
            scope: Some(ORG_NAME_SCOPE),
            owner: application_owner(id),
        };
        let require = |user: u64| StoreEffect::Require {
            subject: user_subject(user),
        };
        // A block lives as long as its name is reserved.
        let block_alive = |block: u64| StoreEffect::RequireHeld {
            scope: Blocks::NAME_SCOPE,
            owner: entry_owner::<Blocks>(block),
        };
        match self {
            Self::ApplicationSubmitted {
                application_id,
                applicant,
                block,
                blind,
                ..
            } => {
                let mut effects = vec![require(*applicant), block_alive(*block)];
                if let Some(blind) = blind {
                    effects.push(StoreEffect::Claim {
                        scope: ORG_NAME_SCOPE,
                        blind: *blind,
                        owner: application_owner(*application_id),
                    });
                }
                effects
            }
            Self::ApplicationApproved { owner, block, .. } => {
                vec![require(*owner), block_alive(*block)]
            }
            Self::OwnershipTransferred { to: user, .. } | Self::ManagerAppointed { user, .. } => {
                vec![require(*user)]
            }
            Self::ApplicationRefused { application_id }
            | Self::ApplicationDeleted {
                application_id,
                was_pending: true,
            }
            | Self::OrganizationDeleted { application_id, .. } => vec![release(*application_id)],
            Self::OrganizationEdited {
                application_id,
                blind: Some(blind),
                ..
            } => vec![
                release(*application_id),
                StoreEffect::Claim {
                    scope: ORG_NAME_SCOPE,
                    blind: *blind,
                    owner: application_owner(*application_id),
                },
            ],
            _ => Vec::new(),
        }
    }
}
