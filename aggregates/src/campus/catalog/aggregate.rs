use std::marker::PhantomData;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{CatalogCommand, CatalogError, CatalogEvent, EntryEvent, PLACE_SCOPE};

/// What a catalogue is: its aggregate type and reservation scopes.
pub trait Catalog: std::fmt::Debug + Clone + PartialEq + Default + Send + Sync + 'static {
    const TYPE: &'static str;
    /// Event types are `{NOUN}Created`, `{NOUN}Renamed`, `{NOUN}Deleted`.
    const NOUN: &'static str;
    const NAME_SCOPE: &'static str;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blocks;
impl Catalog for Blocks {
    const TYPE: &'static str = "Block";
    const NOUN: &'static str = "Block";
    const NAME_SCOPE: &'static str = "campus-block-name";
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Categories;
impl Catalog for Categories {
    const TYPE: &'static str = "ActivityCategory";
    const NOUN: &'static str = "ActivityCategory";
    const NAME_SCOPE: &'static str = "campus-category-name";
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Addresses;
impl Catalog for Addresses {
    const TYPE: &'static str = "ActivityAddress";
    const NOUN: &'static str = "ActivityAddress";
    const NAME_SCOPE: &'static str = "campus-address-name";
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Entry<K> {
    id: Option<u64>,
    name: String,
    deleted: bool,
    #[serde(skip)]
    kind: PhantomData<K>,
}

impl<K> Default for Entry<K> {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            deleted: false,
            kind: PhantomData,
        }
    }
}

impl<K> Clone for Entry<K> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            name: self.name.clone(),
            deleted: self.deleted,
            kind: PhantomData,
        }
    }
}

impl<K: Catalog> Aggregate for Entry<K> {
    const TYPE: &'static str = K::TYPE;
    type Command = CatalogCommand;
    type Event = EntryEvent<K>;
    type Error = CatalogError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CatalogCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CatalogError> {
        let event = match command {
            CatalogCommand::Create { id, name, place } => {
                if self.id.is_some() {
                    return Err(CatalogError::Exists);
                }
                let mut blinds = vec![(K::NAME_SCOPE, name.blind)];
                if let Some((_, blind)) = &place {
                    blinds.push((PLACE_SCOPE, *blind));
                }
                CatalogEvent::Created {
                    id,
                    name: name.value,
                    place: place.map(|(p, _)| p),
                    blinds,
                }
            }
            CatalogCommand::Rename { name } => {
                let id = self.live()?;
                if name.value == self.name {
                    return Err(CatalogError::SameName);
                }
                // Another spelling of the same name keeps its reservation.
                let other_name =
                    crate::text::name_key(&name.value) != crate::text::name_key(&self.name);
                CatalogEvent::Renamed {
                    id,
                    name: name.value,
                    blind: other_name.then_some((K::NAME_SCOPE, name.blind)),
                }
            }
            CatalogCommand::Delete => CatalogEvent::Deleted { id: self.live()? },
        };
        sink.write(event.into(), self).await;
        Ok(())
    }

    fn apply(&mut self, event: EntryEvent<K>) {
        match event.event {
            CatalogEvent::Created { id, name, .. } => {
                self.id = Some(id);
                self.name = name;
            }
            CatalogEvent::Renamed { name, .. } => self.name = name,
            CatalogEvent::Deleted { .. } => self.deleted = true,
        }
    }
}

impl<K> Entry<K> {
    fn live(&self) -> Result<u64, CatalogError> {
        match self.id {
            Some(id) if !self.deleted => Ok(id),
            _ => Err(CatalogError::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::campus::catalog::{Place, Unique};
    use crate::personal::{Blind, HasStoreEffects, StoreEffect};

    fn unique(name: &str) -> Unique {
        Unique {
            value: name.into(),
            blind: Blind([name.len() as u8; 32]),
        }
    }

    fn created() -> EntryEvent<Blocks> {
        CatalogEvent::Created {
            id: 4,
            name: "社团".into(),
            place: None,
            blinds: vec![(Blocks::NAME_SCOPE, unique("社团").blind)],
        }
        .into()
    }

    #[test]
    fn a_block_is_created_once_and_claims_its_name() {
        TestFramework::<Entry<Blocks>>::with(())
            .given_no_previous_events()
            .when(CatalogCommand::Create {
                id: 4,
                name: unique("社团"),
                place: None,
            })
            .then_expect_events(vec![created()]);
        TestFramework::<Entry<Blocks>>::with(())
            .given(vec![created()])
            .when(CatalogCommand::Create {
                id: 4,
                name: unique("社团"),
                place: None,
            })
            .then_expect_error(CatalogError::Exists);
        let effects = created().store_effects();
        assert!(
            matches!(&effects[..], [StoreEffect::Claim { scope, owner, .. }]
            if *scope == Blocks::NAME_SCOPE && owner == "campus-Block:4")
        );
        assert_eq!(created().event_type(), "BlockCreated");
    }

    #[test]
    fn a_rename_frees_the_old_name_and_must_change_it() {
        TestFramework::<Entry<Blocks>>::with(())
            .given(vec![created()])
            .when(CatalogCommand::Rename {
                name: unique("社团"),
            })
            .then_expect_error(CatalogError::SameName);
        let renamed: EntryEvent<Blocks> = CatalogEvent::Renamed {
            id: 4,
            name: "版块4".into(),
            blind: Some((Blocks::NAME_SCOPE, unique("版块4").blind)),
        }
        .into();
        let effects = renamed.store_effects();
        assert!(matches!(
            effects[0],
            StoreEffect::Release { scope: Some(_), .. }
        ));
        assert!(matches!(effects[1], StoreEffect::Claim { .. }));
        TestFramework::<Entry<Blocks>>::with(())
            .given(vec![created()])
            .when(CatalogCommand::Rename {
                name: unique("版块4"),
            })
            .then_expect_events(vec![renamed]);
    }

    #[test]
    fn a_deleted_entry_frees_everything_and_is_gone() {
        let deleted: EntryEvent<Blocks> = CatalogEvent::Deleted { id: 4 }.into();
        assert!(matches!(
            deleted.store_effects()[..],
            [StoreEffect::Release { scope: None, .. }]
        ));
        TestFramework::<Entry<Blocks>>::with(())
            .given(vec![created()])
            .when(CatalogCommand::Delete)
            .then_expect_events(vec![deleted.clone()]);
        for command in [
            CatalogCommand::Delete,
            CatalogCommand::Rename { name: unique("x") },
        ] {
            TestFramework::<Entry<Blocks>>::with(())
                .given(vec![created(), deleted.clone()])
                .when(command)
                .then_expect_error(CatalogError::Unknown);
        }
    }

    #[test]
    fn an_address_claims_its_name_and_its_place() {
        let place = Place {
            longitude: "123.123000".into(),
            latitude: "45.000000".into(),
        };
        let event: EntryEvent<Addresses> = CatalogEvent::Created {
            id: 2,
            name: "篮球场".into(),
            place: Some(place.clone()),
            blinds: vec![
                (Addresses::NAME_SCOPE, Blind([1; 32])),
                (PLACE_SCOPE, Blind([2; 32])),
            ],
        }
        .into();
        assert_eq!(event.store_effects().len(), 2);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["Created"]["place"]["longitude"], "123.123000");
        assert!(json["Created"].get("blinds").is_none());
    }
}
