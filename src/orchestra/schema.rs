//! The orchestra's bodies as the OpenAPI document describes them. The handlers read bodies
//! through `crate::http::Input` (JSON or form alike); these types exist for the document only,
//! next to the answers' own types (`AbsenceRow`, ...), which are used both ways.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct LoginBody {
    /// The name as on the roster.
    #[schema(example = "David", min_length = 1)]
    pub name: String,
    /// The `code` of `wx.login()`.
    #[schema(example = "081aBcDe2fGhIj0KlMn3oPqR", min_length = 1)]
    pub code: String,
    /// Ignored (old clients send it): the server's configured credentials are used.
    pub app_id: Option<String>,
    /// Ignored, as `app_id`.
    pub app_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "login!", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIzIiwiYm5kIjoxfQ.c2ln"}))]
pub struct LoginAnswer {
    pub msg: String,
    /// Send it back as `Authorization: JWT <token>`; valid 7 days.
    pub token: String,
}

/// The rehearsal an absence is for; the combined ones cost two from the quota.
#[derive(Serialize, ToSchema)]
pub enum AbsenceKind {
    #[serde(rename = "全体排练")]
    Tutti,
    #[serde(rename = "弦乐分排")]
    StringsSectional,
    #[serde(rename = "管乐分排")]
    WindsSectional,
    #[serde(rename = "弦乐重奏")]
    StringsEnsemble,
    #[serde(rename = "管乐重奏")]
    WindsEnsemble,
    #[serde(rename = "全体排练+弦乐分排")]
    TuttiAndStringsSectional,
    #[serde(rename = "全体排练+管乐分排")]
    TuttiAndWindsSectional,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"reason": "exam", "time_absence": "2026-03-12", "type": "全体排练"}))]
pub struct AbsenceBody {
    /// Not blank, at most 1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
    /// A date after today, not taken by another of the caller's absences: `2026-03-12` or
    /// `2026-3-12`.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")]
    pub time_absence: String,
    #[serde(rename = "type")]
    pub kind: AbsenceKind,
}

/// Each field left out keeps its value.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"time_absence": "2026-03-20"}))]
pub struct AbsenceChangeBody {
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: Option<String>,
    #[schema(pattern = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")]
    pub time_absence: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<AbsenceKind>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"result": "Get well soon", "permission": true}))]
pub struct ProcessBody {
    /// Required; may be empty; at most 1000 characters.
    #[schema(max_length = 1000)]
    pub result: String,
    /// `true`/`false` (also `"true"`, `"false"`, `1`, `0`).
    pub permission: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Presence {
    pub name: String,
    /// `absent` (an approved absence) or `present`.
    #[schema(example = "present")]
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceAnswer {
    #[schema(example = "2026-03-12")]
    pub time: String,
    pub members: Vec<Presence>,
}

/// The nearest rehearsal date with absences, by section; `[]` when there is none.
#[derive(Serialize, ToSchema)]
pub struct NextRehearsal {
    #[schema(example = "2026-03-12")]
    pub time: String,
    pub stringed: Vec<super::read::AbsenceRow>,
    pub wind: Vec<super::read::AbsenceRow>,
    pub percussion: Vec<super::read::AbsenceRow>,
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
