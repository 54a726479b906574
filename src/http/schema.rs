//! The shapes of bodies as the OpenAPI document describes them (`GET /openapi.json`). The
//! handlers read bodies through [`super::Input`] (JSON or form alike); these types exist for
//! the document only, next to the answers' own types (`AbsenceRow`, ...), which are used both
//! ways.

use serde::Serialize;
use utoipa::ToSchema;

/// Every error, and some answers: `{"msg": "..."}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "reason is required."}))]
pub struct Message {
    pub msg: String,
}

/// A record that is not there (or not the caller's).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"msg": "Not found.", "detail": "未找到。"}))]
pub struct NotFound {
    pub msg: String,
    pub detail: String,
}

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
    pub stringed: Vec<crate::orchestra::read::AbsenceRow>,
    pub wind: Vec<crate::orchestra::read::AbsenceRow>,
    pub percussion: Vec<crate::orchestra::read::AbsenceRow>,
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

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "not ready", "reason": "read model orchestra_absences is 1001+ events behind the log (at most 1000 allowed)"}))]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// DRF's shape of an authentication or permission failure.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "身份认证信息未提供。"}))]
pub struct Detail {
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"username": "Jessica", "password": "123456"}))]
pub struct AdminLogin {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": "true", "user": {"username": "Jessica"}, "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}))]
pub struct AdminLoginAnswer {
    /// `"true"`.
    pub success: String,
    pub user: AdminUser,
    /// Send it back as `Authorization: JWT <token>` (login only; `register` answers without).
    pub token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": "false", "mess": "Invalid User"}))]
pub struct InvalidUser {
    pub success: String,
    pub mess: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"username": "Jessica", "password": "123456", "email": "jessica@example.edu"}))]
pub struct Register {
    #[schema(min_length = 1, max_length = 150)]
    pub username: String,
    #[schema(min_length = 6)]
    pub password: String,
    pub email: String,
}
