//! The superusers' catalogues: blocks (版块), activity categories and activity addresses.
//! Names (and an address's coordinates) are unique: reserved by keyed hash in the append's
//! statement, so of simultaneous requests for one name exactly one succeeds, in one process or
//! several; a rename or a deletion frees the old name.

use aggregates::campus::catalog::{
    entry_owner, Addresses, Blocks, Catalog, CatalogCommand, CatalogError, Categories, Entry,
    Place, Unique, PLACE_SCOPE,
};
use runtime::bus::{CommandBus, CommandError};
use serde_json::{json, Value};

use super::{command_failed, next_id};
use crate::campus::auth::Caller;
use crate::campus::body::{AddressBody, NameBody};
use crate::campus::context::Campus;
use crate::campus::fields::{field_error, Fields, MAX_NAME};
use crate::http::{ApiError, Field};

/// What differs between the catalogues, on the wire and in the store.
pub struct Kind<K: Catalog> {
    pub table: &'static str,
    sequence: &'static str,
    /// `具有 版块名称 的 block 已存在。`
    taken: &'static str,
    /// A rename to the same name: (field, message).
    same: (&'static str, &'static str),
    bus: fn(&Campus) -> &CommandBus<Entry<K>>,
    /// The JSON of an entry, from the table's columns.
    pub columns: &'static str,
}

pub const BLOCKS: Kind<Blocks> = Kind {
    table: "campus_blocks",
    sequence: "campus_block_id_seq",
    taken: "具有 版块名称 的 block 已存在。",
    same: ("block", "板块名称重复"),
    bus: |app| &app.blocks,
    columns: "'id', id, 'name', name",
};

pub const CATEGORIES: Kind<Categories> = Kind {
    table: "campus_categories",
    sequence: "campus_category_id_seq",
    taken: "具有 分类名称 的 category 已存在。",
    same: ("category", "分类名称重复"),
    bus: |app| &app.categories,
    columns: "'id', id, 'name', name",
};

pub const ADDRESSES: Kind<Addresses> = Kind {
    table: "campus_addresses",
    sequence: "campus_address_id_seq",
    taken: "具有 地址名称 的 address 已存在。",
    same: ("address", "地点重复。"),
    bus: |app| &app.addresses,
    columns: "'id', id, 'name', name, 'longitude', longitude, 'latitude', latitude",
};

const PLACE_TAKEN: &str = "地点重复。";

/// Whether block `id` exists and is not deleted (the read model's view).
pub async fn block_exists(app: &Campus, id: i64) -> Result<bool, ApiError> {
    BLOCKS.exists(app, id).await
}

impl<K: Catalog> Kind<K> {
    /// The rows that are live (a deleted block stays in its table, shown by the organisations
    /// already in it).
    pub fn live(&self) -> &'static str {
        if self.table == "campus_blocks" {
            "NOT deleted"
        } else {
            "true"
        }
    }

    pub async fn exists(&self, app: &Campus, id: i64) -> Result<bool, ApiError> {
        Ok(projections::campus::read::catalog_entry(
            &app.rt.pool,
            self.table,
            self.columns,
            self.live(),
            id,
        )
        .await?
        .is_some())
    }

    fn unique(&self, app: &Campus, name: &str) -> Unique {
        Unique {
            value: name.to_string(),
            blind: app.rt.keys.blind_name(K::NAME_SCOPE, name),
        }
    }

    async fn taken(&self, app: &Campus, unique: &Unique) -> Result<bool, ApiError> {
        Ok(app
            .rt
            .keys
            .owner(K::NAME_SCOPE, unique.blind)
            .await?
            .is_some())
    }

    fn name(&self, fields: &mut Fields, name: &Field) -> Option<String> {
        fields.text(name, "name", true, MAX_NAME, true)
    }

    /// A superuser creates an entry: `{id, name}`.
    pub async fn create(
        &self,
        app: &Campus,
        me: &Caller,
        body: &NameBody,
    ) -> Result<Value, ApiError> {
        me.superuser()?;
        let mut fields = Fields::default();
        let name = self.name(&mut fields, &body.name);
        fields.check()?;
        let name = self.unique(app, &name.unwrap_or_default());
        if self.taken(app, &name).await? {
            return Err(field_error("name", self.taken));
        }
        let id = next_id(app, self.sequence).await?;
        let command = CatalogCommand::Create {
            id,
            name: name.clone(),
            place: None,
        };
        match (self.bus)(app)
            .execute(&id.to_string(), command, &me.actor)
            .await
        {
            Ok(_) => Ok(json!({"id": id, "name": name.value})),
            Err(CommandError::Duplicate) => Err(field_error("name", self.taken)),
            Err(e) => Err(command_failed(e)),
        }
    }

    /// A superuser renames entry `id`: `{id, name}`.
    pub async fn rename(
        &self,
        app: &Campus,
        me: &Caller,
        id: i64,
        body: &NameBody,
    ) -> Result<Value, ApiError> {
        me.superuser()?;
        if !self.exists(app, id).await? {
            return Err(ApiError::not_found());
        }
        let mut fields = Fields::default();
        let name = self.name(&mut fields, &body.name);
        fields.check()?;
        let name = self.unique(app, &name.unwrap_or_default());
        let owner = app.rt.keys.owner(K::NAME_SCOPE, name.blind).await?;
        if owner.is_some_and(|o| o != entry_owner::<K>(id as u64)) {
            return Err(field_error("name", self.taken));
        }
        let command = CatalogCommand::Rename { name: name.clone() };
        match (self.bus)(app)
            .execute(&id.to_string(), command, &me.actor)
            .await
        {
            Ok(_) => Ok(json!({"id": id, "name": name.value})),
            Err(CommandError::Rejected(CatalogError::SameName)) => {
                Err(field_error(self.same.0, self.same.1))
            }
            Err(CommandError::Rejected(CatalogError::Unknown)) => Err(ApiError::not_found()),
            Err(CommandError::Duplicate) => Err(field_error("name", self.taken)),
            Err(e) => Err(command_failed(e)),
        }
    }

    /// A superuser deletes entry `id` (its name is free again).
    pub async fn delete(&self, app: &Campus, me: &Caller, id: i64) -> Result<(), ApiError> {
        me.superuser()?;
        if !self.exists(app, id).await? {
            return Err(ApiError::not_found());
        }
        match (self.bus)(app)
            .execute(&id.to_string(), CatalogCommand::Delete, &me.actor)
            .await
        {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(CatalogError::Unknown)) => Err(ApiError::not_found()),
            Err(e) => Err(command_failed(e)),
        }
    }
}

/// A coordinate as the API shows it: six decimals (`"123.123000"`), at most three digits
/// before the point.
fn coordinate(fields: &mut Fields, input: &Field, field: &str) -> Option<String> {
    let raw = fields.text(input, field, true, 32, true)?;
    // Six decimals, at most three digits before the point once rounded.
    let valid = raw
        .parse::<f64>()
        .ok()
        .map(|v| (v * 1e6).round() / 1e6)
        .filter(|v| v.is_finite() && v.abs() < 1000.0);
    match valid {
        Some(v)
            if raw
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') =>
        {
            let text = format!("{v:.6}");
            Some(if text == "-0.000000" {
                "0.000000".into()
            } else {
                text
            })
        }
        _ => {
            fields.add(field, "请填写合法的数字。");
            None
        }
    }
}

/// Anyone signed in creates an activity address: a unique name, and a place (its
/// coordinates) nobody else has: `{id, name, longitude, latitude}`.
pub async fn create_address(
    app: &Campus,
    me: &Caller,
    body: &AddressBody,
) -> Result<Value, ApiError> {
    let mut fields = Fields::default();
    let name = fields.text(&body.name, "name", true, MAX_NAME, true);
    let longitude = coordinate(&mut fields, &body.longitude, "longitude");
    let latitude = coordinate(&mut fields, &body.latitude, "latitude");
    fields.check()?;
    let (Some(name), Some(longitude), Some(latitude)) = (name, longitude, latitude) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    let name = ADDRESSES.unique(app, &name);
    let place_blind = app
        .rt
        .keys
        .blind(PLACE_SCOPE, &format!("{longitude},{latitude}"));
    // Which of the two is taken, each with its own field error.
    let taken = || async {
        let mut fields = Fields::default();
        if ADDRESSES.taken(app, &name).await? {
            fields.add("name", ADDRESSES.taken);
        }
        if app.rt.keys.owner(PLACE_SCOPE, place_blind).await?.is_some() {
            fields.add("address", PLACE_TAKEN);
        }
        fields.check()
    };
    taken().await?;
    let id = next_id(app, ADDRESSES.sequence).await?;
    let place = Place {
        longitude: longitude.clone(),
        latitude: latitude.clone(),
    };
    let command = CatalogCommand::Create {
        id,
        name: name.clone(),
        place: Some((place, place_blind)),
    };
    match app
        .addresses
        .execute(&id.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => {
            Ok(json!({"id": id, "name": name.value, "longitude": longitude, "latitude": latitude}))
        }
        // Taken meanwhile: say which.
        Err(CommandError::Duplicate) => {
            taken().await?;
            Err(ApiError::busy("Please try again."))
        }
        Err(e) => Err(command_failed(e)),
    }
}

/// The entry `id` of catalogue `kind` as the API shows it, or 404.
pub async fn entry<K: Catalog>(app: &Campus, kind: &Kind<K>, id: i64) -> Result<Value, ApiError> {
    projections::campus::read::catalog_entry(
        &app.rt.pool,
        kind.table,
        kind.columns,
        kind.live(),
        id,
    )
    .await?
    .ok_or_else(ApiError::not_found)
}
