use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{HasStoreEffects, Sealed, StoreEffect};

/// Reservation scope of superusers' usernames.
pub const USERNAME_SCOPE: &str = "campus-superuser-name";

/// The key subject (and actor) of superuser `id`.
pub fn superuser_subject(id: &str) -> String {
    format!("campus-superuser:{id}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum SuperuserEvent {
    SuperuserRegistered {
        superuser_id: String,
        username: Sealed,
        email: Sealed,
        /// In memory only, from the command to the store's credentials table.
        #[serde(skip)]
        password_hash: Option<String>,
    },
    SuperuserDisabled {
        superuser_id: String,
    },
}

impl DomainEvent for SuperuserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SuperuserRegistered { .. } => "SuperuserRegistered",
            Self::SuperuserDisabled { .. } => "SuperuserDisabled",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl HasStoreEffects for SuperuserEvent {
    fn store_effects(&self) -> Vec<StoreEffect> {
        match self {
            Self::SuperuserRegistered {
                superuser_id,
                username,
                password_hash,
                ..
            } => {
                let owner = superuser_subject(superuser_id);
                let mut effects = Vec::new();
                if let Some(blind) = username.blind {
                    effects.push(StoreEffect::Claim {
                        scope: USERNAME_SCOPE,
                        blind,
                        owner: owner.clone(),
                    });
                }
                if let Some(hash) = password_hash {
                    effects.push(StoreEffect::Credential {
                        subject: owner,
                        hash: hash.clone(),
                    });
                }
                effects
            }
            Self::SuperuserDisabled { .. } => Vec::new(),
        }
    }
}
