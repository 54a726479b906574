//! The superusers' catalogues: blocks (版块), activity categories and activity addresses, and
//! the organisations of a block. Names (and an address's coordinates) are unique: reserved by
//! keyed hash in the append's statement, so of simultaneous requests for one name exactly one
//! succeeds, in one process or several; a rename or a deletion frees the old name.

use std::sync::Arc;

use aggregates::campus::catalog::{
    Addresses, Blocks, Catalog, CatalogCommand, CatalogError, Categories, Entry, Place, Unique,
    PLACE_SCOPE,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::common::{
    command_failed, envelope, envelope_error, field_error, next_id, parse_positive, Fields, Page,
    Query, MAX_NAME,
};
use super::read;
use super::Campus;
use crate::http::{parse_id, ApiError, Input, Segment};
use runtime::bus::{CommandBus, CommandError};

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(blocks, create_block))
        .routes(routes!(rename_block, delete_block))
        .routes(routes!(block_orgs))
        .routes(routes!(categories, create_category))
        .routes(routes!(rename_category, delete_category))
        .routes(routes!(addresses, create_address))
        .routes(routes!(delete_address))
}

/// What differs between the catalogues on the wire.
struct Kind<K: Catalog> {
    table: &'static str,
    sequence: &'static str,
    /// `具有 版块名称 的 block 已存在。`
    taken: &'static str,
    /// A rename to the same name: (field, message).
    same: (&'static str, &'static str),
    bus: fn(&Campus) -> &CommandBus<Entry<K>>,
}

const BLOCKS: Kind<Blocks> = Kind {
    table: "campus_blocks",
    sequence: "campus_block_id_seq",
    taken: "具有 版块名称 的 block 已存在。",
    same: ("block", "板块名称重复"),
    bus: |app| &app.blocks,
};

const CATEGORIES: Kind<Categories> = Kind {
    table: "campus_categories",
    sequence: "campus_category_id_seq",
    taken: "具有 分类名称 的 category 已存在。",
    same: ("category", "分类名称重复"),
    bus: |app| &app.categories,
};

const ADDRESSES: Kind<Addresses> = Kind {
    table: "campus_addresses",
    sequence: "campus_address_id_seq",
    taken: "具有 地址名称 的 address 已存在。",
    same: ("address", "地点重复。"),
    bus: |app| &app.addresses,
};

const PLACE_TAKEN: &str = "地点重复。";

impl<K: Catalog> Kind<K> {
    fn live(&self) -> String {
        if self.table == "campus_blocks" {
            "NOT deleted".into()
        } else {
            "true".into()
        }
    }

    async fn exists(&self, app: &Campus, id: i64) -> Result<bool, ApiError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT FROM {} WHERE id = $1 AND {})",
            self.table,
            self.live()
        ))
        .bind(id)
        .fetch_one(&app.rt.pool)
        .await?)
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

    async fn list(
        &self,
        app: &Campus,
        me: &Caller,
        page: &Page,
        columns: &str,
    ) -> Result<Value, ApiError> {
        read::list(
            app,
            me.viewer(),
            page,
            &read::Listing::catalog(self.table, columns, &self.live()),
            &[],
        )
        .await
    }

    async fn create(&self, app: &Campus, me: &Caller, input: &Input) -> Result<Response, ApiError> {
        me.superuser()?;
        let mut fields = Fields::default();
        let name = fields.text(input, "name", true, MAX_NAME, true);
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
            Ok(_) => Ok((
                StatusCode::CREATED,
                Json(json!({"id": id, "name": name.value})),
            )
                .into_response()),
            Err(CommandError::Duplicate) => Err(field_error("name", self.taken)),
            Err(e) => Err(command_failed(e)),
        }
    }

    async fn rename(
        &self,
        app: &Campus,
        me: &Caller,
        id: &str,
        input: &Input,
    ) -> Result<Response, ApiError> {
        me.superuser()?;
        let id = parse_id(id)?;
        if !self.exists(app, id).await? {
            return Err(ApiError::not_found());
        }
        let mut fields = Fields::default();
        let name = fields.text(input, "name", true, MAX_NAME, true);
        fields.check()?;
        let name = self.unique(app, &name.unwrap_or_default());
        let owner = app.rt.keys.owner(K::NAME_SCOPE, name.blind).await?;
        if owner.is_some_and(|o| o != aggregates::campus::catalog::entry_owner::<K>(id as u64)) {
            return Err(field_error("name", self.taken));
        }
        let command = CatalogCommand::Rename { name: name.clone() };
        match (self.bus)(app)
            .execute(&id.to_string(), command, &me.actor)
            .await
        {
            Ok(_) => Ok(Json(json!({"id": id, "name": name.value})).into_response()),
            Err(CommandError::Rejected(CatalogError::SameName)) => {
                Err(field_error(self.same.0, self.same.1))
            }
            Err(CommandError::Rejected(CatalogError::Unknown)) => Err(ApiError::not_found()),
            Err(CommandError::Duplicate) => Err(field_error("name", self.taken)),
            Err(e) => Err(command_failed(e)),
        }
    }

    async fn delete(&self, app: &Campus, me: &Caller, id: &str) -> Result<Response, ApiError> {
        me.superuser()?;
        let id = parse_id(id)?;
        if !self.exists(app, id).await? {
            return Err(ApiError::not_found());
        }
        match (self.bus)(app)
            .execute(&id.to_string(), CatalogCommand::Delete, &me.actor)
            .await
        {
            Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            Err(CommandError::Rejected(CatalogError::Unknown)) => Err(ApiError::not_found()),
            Err(e) => Err(command_failed(e)),
        }
    }
}

// ---- blocks ---------------------------------------------------------------------------------

#[utoipa::path(get, path = "/blocks", tag = "campus", summary = "Every block",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
              (status = 401, description = "Not logged in", body = Object)))]
async fn blocks(State(app): AppState, me: Caller, page: Page) -> Result<Response, ApiError> {
    Ok(Json(
        BLOCKS
            .list(&app, &me, &page, "'id', id, 'name', name")
            .await?,
    )
    .into_response())
}

#[utoipa::path(post, path = "/blocks", tag = "campus", summary = "Create a block (superusers)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank or taken", body = Object, example = json!({"name": ["具有 版块名称 的 block 已存在。"]})),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object)))]
async fn create_block(
    State(app): AppState,
    me: Caller,
    input: Input,
) -> Result<Response, ApiError> {
    BLOCKS.create(&app, &me, &input).await
}

#[utoipa::path(put, path = "/blocks/{id}", tag = "campus", summary = "Rename a block (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank, taken or unchanged", body = Object, example = json!({"block": ["板块名称重复"]})),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object),
              (status = 404, description = "No such block", body = Object)))]
async fn rename_block(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    BLOCKS.rename(&app, &me, &id, &input).await
}

#[utoipa::path(delete, path = "/blocks/{id}", tag = "campus", summary = "Delete a block (superusers)",
    description = "Organisations in it keep showing it; no new application may name it.",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object),
              (status = 404, description = "No such block", body = Object)))]
async fn delete_block(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    BLOCKS.delete(&app, &me, &id).await
}

#[utoipa::path(get, path = "/blocks/orgs", tag = "campus", summary = "The organisations of a block (?block=), in the envelope",
    security(("jwt" = [])),
    params(("block" = i64, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "The envelope; `status: 1` for an unknown block", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
              (status = 401, description = "Not logged in", body = Object)))]
async fn block_orgs(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    let block = query.get("block").and_then(parse_positive);
    let Some(block) = block else {
        return Ok(Json(envelope_error("invalid block")).into_response());
    };
    if !BLOCKS.exists(&app, block).await? {
        return Ok(Json(envelope_error("invalid block")).into_response());
    }
    let list = read::list(
        &app,
        me.viewer(),
        &page,
        &read::Listing::orgs_in_block(),
        &[block],
    )
    .await?;
    Ok(Json(envelope(list)).into_response())
}

// ---- activity categories ------------------------------------------------------------------

#[utoipa::path(get, path = "/activities/categories", tag = "campus", summary = "Every activity category",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
              (status = 401, description = "Not logged in", body = Object)))]
async fn categories(State(app): AppState, me: Caller, page: Page) -> Result<Response, ApiError> {
    Ok(Json(
        CATEGORIES
            .list(&app, &me, &page, "'id', id, 'name', name")
            .await?,
    )
    .into_response())
}

#[utoipa::path(post, path = "/activities/categories", tag = "campus", summary = "Create a category (superusers)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank or taken", body = Object, example = json!({"name": ["具有 分类名称 的 category 已存在。"]})),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object)))]
async fn create_category(
    State(app): AppState,
    me: Caller,
    input: Input,
) -> Result<Response, ApiError> {
    CATEGORIES.create(&app, &me, &input).await
}

#[utoipa::path(put, path = "/activities/categories/{id}", tag = "campus", summary = "Rename a category (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank, taken or unchanged", body = Object, example = json!({"category": ["分类名称重复"]})),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object),
              (status = 404, description = "No such category", body = Object)))]
async fn rename_category(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    CATEGORIES.rename(&app, &me, &id, &input).await
}

#[utoipa::path(delete, path = "/activities/categories/{id}", tag = "campus", summary = "Delete a category (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object),
              (status = 404, description = "No such category", body = Object)))]
async fn delete_category(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    CATEGORIES.delete(&app, &me, &id).await
}

// ---- activity addresses -------------------------------------------------------------------

#[utoipa::path(get, path = "/activities/addresses", tag = "campus", summary = "Every activity address",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name, longitude, latitude}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
              (status = 401, description = "Not logged in", body = Object)))]
async fn addresses(State(app): AppState, me: Caller, page: Page) -> Result<Response, ApiError> {
    let columns = "'id', id, 'name', name, 'longitude', longitude, 'latitude', latitude";
    Ok(Json(ADDRESSES.list(&app, &me, &page, columns).await?).into_response())
}

/// A coordinate as the API shows it: six decimals (`"123.123000"`), at most three digits
/// before the point.
fn coordinate(fields: &mut Fields, input: &Input, field: &str) -> Option<String> {
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

#[utoipa::path(post, path = "/activities/addresses", tag = "campus", summary = "Create an activity address (users and superusers)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name, longitude, latitude}`", body = Object),
              (status = 400, description = "A field missing or bad, the name or the place taken", body = Object, example = json!({"address": ["地点重复。"]})),
              (status = 401, description = "Not logged in", body = Object)))]
async fn create_address(
    State(app): AppState,
    me: Caller,
    input: Input,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let name = fields.text(&input, "name", true, MAX_NAME, true);
    let longitude = coordinate(&mut fields, &input, "longitude");
    let latitude = coordinate(&mut fields, &input, "latitude");
    fields.check()?;
    let (Some(name), Some(longitude), Some(latitude)) = (name, longitude, latitude) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    let name = ADDRESSES.unique(&app, &name);
    let place_blind = app
        .rt
        .keys
        .blind(PLACE_SCOPE, &format!("{longitude},{latitude}"));
    let taken = async {
        let mut fields = Fields::default();
        if ADDRESSES.taken(&app, &name).await? {
            fields.add("name", ADDRESSES.taken);
        }
        if app.rt.keys.owner(PLACE_SCOPE, place_blind).await?.is_some() {
            fields.add("address", PLACE_TAKEN);
        }
        fields.check()
    };
    taken.await?;
    let id = next_id(&app, ADDRESSES.sequence).await?;
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
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(
                json!({"id": id, "name": name.value, "longitude": longitude, "latitude": latitude}),
            ),
        )
            .into_response()),
        // Taken meanwhile: say which.
        Err(CommandError::Duplicate) => {
            let mut fields = Fields::default();
            if ADDRESSES.taken(&app, &name).await? {
                fields.add("name", ADDRESSES.taken);
            }
            if app.rt.keys.owner(PLACE_SCOPE, place_blind).await?.is_some() {
                fields.add("address", PLACE_TAKEN);
            }
            fields.check()?;
            Err(ApiError::busy("Please try again."))
        }
        Err(e) => Err(command_failed(e)),
    }
}

#[utoipa::path(delete, path = "/activities/addresses/{id}", tag = "campus", summary = "Delete an activity address (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "Not logged in", body = Object),
              (status = 403, description = "Not a superuser", body = Object),
              (status = 404, description = "No such address", body = Object)))]
async fn delete_address(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    ADDRESSES.delete(&app, &me, &id).await
}

/// Whether block `id` exists (for applications).
pub async fn block_exists(app: &Campus, id: i64) -> Result<bool, ApiError> {
    BLOCKS.exists(app, id).await
}
