//! The orchestra's bodies, as the handlers read them and the OpenAPI document shows them (one
//! type each, JSON or form alike), and the answers' own types.

use aggregates::orchestra::AbsenceType;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::http::{parse_date, ApiError, Field};

/// Reasons and managers' results: at most this many characters.
pub const MAX_TEXT_CHARS: usize = 1000;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "David", "code": "081aBcDe2fGhIj0KlMn3oPqR"}))]
pub struct LoginBody {
    /// The name as on the roster.
    #[schema(value_type = String, required = true, example = "David", min_length = 1)]
    #[serde(default)]
    pub name: Field,
    /// The `code` of `wx.login()`.
    #[schema(value_type = String, required = true, example = "081aBcDe2fGhIj0KlMn3oPqR", min_length = 1)]
    #[serde(default)]
    pub code: Field,
    /// Ignored (old clients send it): the server's configured credentials are used.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub app_id: Field,
    /// Ignored, as `app_id`.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub app_secret: Field,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "login!", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIiwiYm5kIjoxfQ.c2ln"}))]
pub struct LoginAnswer {
    pub msg: &'static str,
    /// Send it back as `Authorization: JWT <token>`; valid 7 days.
    pub token: String,
}

/// The rehearsal an absence is for (`aggregates::orchestra::AbsenceType`, whose names these
/// are); the combined ones cost two from the quota.
pub struct AbsenceKind;

impl PartialSchema for AbsenceKind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(AbsenceType::ALL.map(AbsenceType::as_str)))
            .description(Some(
                "The rehearsal missed; the combined ones cost two from the quota.",
            ))
            .into()
    }
}

impl ToSchema for AbsenceKind {}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "exam", "time_absence": "2026-03-12", "type": "全体排练"}))]
pub struct AbsenceBody {
    /// Not blank, at most 1000 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1000)]
    #[serde(default)]
    pub reason: Field,
    /// A date after today, not taken by another of the caller's absences: `2026-03-12` or
    /// `2026-3-12`.
    #[schema(value_type = String, required = true, pattern = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")]
    #[serde(default)]
    pub time_absence: Field,
    #[serde(rename = "type")]
    #[schema(value_type = AbsenceKind, required = true)]
    #[serde(default)]
    pub kind: Field,
}

/// Each field left out keeps its value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"time_absence": "2026-03-20"}))]
pub struct AbsenceChangeBody {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1000)]
    #[serde(default)]
    pub reason: Field,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")]
    #[serde(default)]
    pub time_absence: Field,
    #[serde(rename = "type")]
    #[schema(value_type = Option<AbsenceKind>)]
    #[serde(default)]
    pub kind: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"result": "Get well soon", "permission": true}))]
pub struct DecisionBody {
    /// Required; may be empty; at most 1000 characters.
    #[schema(value_type = String, required = true, max_length = 1000)]
    #[serde(default)]
    pub result: Field,
    /// `true`/`false` (also `"true"`, `"false"`, `1`, `0`).
    #[schema(value_type = bool, required = true)]
    #[serde(default)]
    pub permission: Field,
    /// Ignored: the processor is always the caller.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub processor: Field,
}

/// A reason: not blank, at most [`MAX_TEXT_CHARS`], trimmed. Absent: None.
pub fn reason(field: &Field) -> Result<Option<String>, ApiError> {
    let Some(reason) = field.text("reason")? else {
        return Ok(None);
    };
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is required."));
    }
    if reason.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(format!(
            "reason is longer than {MAX_TEXT_CHARS} characters."
        )));
    }
    Ok(Some(reason.trim().to_string()))
}

/// A date of an absence. Absent: None.
pub fn date(field: &Field) -> Result<Option<NaiveDate>, ApiError> {
    field
        .text("time_absence")?
        .map(|s| {
            parse_date(&s).ok_or_else(|| {
                ApiError::bad_request("time_absence must be a date like 2026-03-12.")
            })
        })
        .transpose()
}

/// The kind of an absence. Absent: None.
pub fn kind(field: &Field) -> Result<Option<AbsenceType>, ApiError> {
    field
        .text("type")?
        .map(|s| AbsenceType::parse(&s).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

#[derive(Serialize, ToSchema)]
pub struct Presence {
    pub name: String,
    /// `absent` (an approved absence) or `present`.
    #[schema(example = "present")]
    pub state: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceAnswer {
    #[schema(value_type = String, example = "2026-03-12")]
    pub time: NaiveDate,
    pub members: Vec<Presence>,
}

/// The nearest rehearsal date with absences, by section; `[]` when there is none.
#[derive(Serialize, ToSchema)]
pub struct NextRehearsal {
    #[schema(value_type = String, example = "2026-03-12")]
    pub time: NaiveDate,
    pub stringed: Vec<projections::orchestra::AbsenceRow>,
    pub wind: Vec<projections::orchestra::AbsenceRow>,
    pub percussion: Vec<projections::orchestra::AbsenceRow>,
}

/// `GET /manager/next/`: the rehearsal, or `[]` when no future absence exists.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum NextAnswer {
    Rehearsal(NextRehearsal),
    Nothing(Vec<Nothing>),
}

/// Never present: the array is empty.
#[derive(Serialize, ToSchema)]
pub struct Nothing {}

/// A decision's answer: `msg` and the absence's fields.
#[derive(Serialize, ToSchema)]
pub struct Processed {
    pub msg: &'static str,
    #[serde(flatten)]
    pub absence: projections::orchestra::AbsenceRow,
}
