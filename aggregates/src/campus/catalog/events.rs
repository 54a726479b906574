use std::marker::PhantomData;

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::personal::{Blind, HasStoreEffects, StoreEffect};

/// Reservation scope of addresses' coordinates.
pub const PLACE_SCOPE: &str = "campus-address-place";

/// The owner of an entry's reservations.
pub fn entry_owner<K: Catalog>(id: u64) -> String {
    format!("campus-{}:{id}", K::NOUN)
}

/// A longitude and a latitude, as the API shows them: six decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub longitude: String,
    pub latitude: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogEvent {
    Created {
        id: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        place: Option<Place>,
        #[serde(skip)]
        blinds: Vec<(&'static str, Blind)>,
    },
    Renamed {
        id: u64,
        name: String,
        #[serde(skip)]
        blind: Option<(&'static str, Blind)>,
    },
    Deleted {
        id: u64,
    },
}

/// The event as stored for catalogue `K` (its type name says which catalogue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct EntryEvent<K> {
    pub event: CatalogEvent,
    #[serde(skip)]
    kind: PhantomData<K>,
}

impl<K> From<CatalogEvent> for EntryEvent<K> {
    fn from(event: CatalogEvent) -> Self {
        Self {
            event,
            kind: PhantomData,
        }
    }
}

impl<K: Catalog> DomainEvent for EntryEvent<K> {
    fn event_type(&self) -> String {
        let verb = match self.event {
            CatalogEvent::Created { .. } => "Created",
            CatalogEvent::Renamed { .. } => "Renamed",
            CatalogEvent::Deleted { .. } => "Deleted",
        };
        format!("{}{verb}", K::NOUN)
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl<K: Catalog> HasStoreEffects for EntryEvent<K> {
    fn store_effects(&self) -> Vec<StoreEffect> {
        match &self.event {
            CatalogEvent::Created { id, blinds, .. } => blinds
                .iter()
                .map(|(scope, blind)| StoreEffect::Claim {
                    scope,
                    blind: *blind,
                    owner: entry_owner::<K>(*id),
                })
                .collect(),
            // Another name: the old one's reservation goes, the new one's is claimed. Another
            // spelling of the same name (no blind): the reservation stays.
            CatalogEvent::Renamed {
                id,
                blind: Some((scope, blind)),
                ..
            } => vec![
                StoreEffect::Release {
                    scope: Some(K::NAME_SCOPE),
                    owner: entry_owner::<K>(*id),
                },
                StoreEffect::Claim {
                    scope,
                    blind: *blind,
                    owner: entry_owner::<K>(*id),
                },
            ],
            CatalogEvent::Renamed { blind: None, .. } => Vec::new(),
            CatalogEvent::Deleted { id } => vec![StoreEffect::Release {
                scope: None,
                owner: entry_owner::<K>(*id),
            }],
        }
    }
}
