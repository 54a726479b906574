//! The campus's bodies, as the handlers read them and the OpenAPI document shows them (one type
//! each, JSON or form alike: every field a `Field`, read by `super::fields::Fields` so that
//! every wrong field is answered at once in DRF's words), and the answers' own types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::Field;

/// DRF's shape of an authentication or permission failure, or of a missing record.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "身份认证信息未提供。"}))]
pub struct Detail {
    pub detail: String,
}

/// DRF's answer for a record that is not there (or not the caller's to see).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "未找到。"}))]
pub struct DetailNotFound {
    pub detail: String,
}

// ---- users ----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"code": "081aBcDe2fGhIj0KlMn3oPqR", "userInfo": {"nickName": "wzk", "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132"}}))]
pub struct WxLoginBody {
    /// The `code` of `wx.login()`.
    #[schema(value_type = String, required = true, min_length = 1)]
    #[serde(default)]
    pub code: Field,
    /// WeChat's profile (an object, or its JSON text in a form), read only when the login
    /// registers a new user: `nickName` (kept without control and hidden characters, cut to
    /// its first 100 characters) and `avatarUrl` (an http(s) URL).
    #[serde(rename = "userInfo")]
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub user_info: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"email": "wzk@campus.edu"}))]
pub struct SendVerifyBody {
    /// The address to verify.
    #[schema(value_type = String, required = true, format = Email)]
    #[serde(default)]
    pub email: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"verifyCode": "123456", "email": "wzk@campus.edu", "id": 7}))]
pub struct VerifyBody {
    /// The mailed code.
    #[serde(rename = "verifyCode")]
    #[schema(value_type = String, required = true, max_length = 32)]
    #[serde(default)]
    pub verify_code: Field,
    /// The address it was mailed to.
    #[schema(value_type = String, required = true, format = Email)]
    #[serde(default)]
    pub email: Field,
    /// The caller's id.
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub id: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "wzk", "sign": "爱好合唱"}))]
pub struct ProfileBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Field,
    /// The signature (blank or null clears it).
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[serde(default)]
    pub sign: Field,
}

/// A follow (`person` follows `org`) or an appointment (`person` manages `org`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"org": 3, "person": 7}))]
pub struct OrgPersonBody {
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub org: Field,
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub person: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"feedback": "The map is hard to read.", "contact": "wzk@campus.edu"}))]
pub struct FeedbackBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2000)]
    #[serde(default)]
    pub feedback: Field,
    /// How to reach the sender.
    #[schema(value_type = Option<String>, max_length = 200)]
    #[serde(default)]
    pub contact: Field,
}

// ---- organisations --------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "test组织", "description": "我的申请理由", "user": 7, "block": 1}))]
pub struct ApplicationBody {
    /// The organisation's name: unique among organisations and pending applications (compared
    /// after NFKC and case folding).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Field,
    /// Why it should be founded; it becomes the organisation's description.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2000)]
    #[serde(default)]
    pub description: Field,
    /// The applicant: the caller (a superuser may apply for anyone).
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub user: Field,
    /// The block it belongs to.
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub block: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"status": 1}))]
pub struct VerdictBody {
    /// 1 approves (founds the organisation), 2 refuses.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 2)]
    #[serde(default)]
    pub status: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "test组织", "description": "我们唱歌", "avatar": "https://img.example/c.png"}))]
pub struct OrganizationBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Field,
    /// Left out: kept; null or blank: cleared.
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[serde(default)]
    pub description: Field,
    /// An http(s) URL. Left out: kept; null or blank: cleared.
    #[schema(value_type = Option<String>, max_length = 1000)]
    #[serde(default)]
    pub avatar: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"owner": 6}))]
pub struct OwnerBody {
    /// The new owner.
    #[schema(value_type = i64, required = true, minimum = 1)]
    #[serde(default)]
    pub owner: Field,
}

// ---- catalogues -----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "社团"}))]
pub struct NameBody {
    /// Unique in its catalogue (compared after NFKC and case folding).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "图书馆", "longitude": "121.123456", "latitude": "31.123456"}))]
pub struct AddressBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Field,
    /// A number; kept with six decimals, less than 1000 either way.
    #[schema(value_type = String, required = true, example = "121.123456")]
    #[serde(default)]
    pub longitude: Field,
    #[schema(value_type = String, required = true, example = "31.123456")]
    #[serde(default)]
    pub latitude: Field,
}

// ---- superusers -----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"username": "Jessica", "password": "123456"}))]
pub struct AdminLoginBody {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    pub username: Field,
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    pub password: Field,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"username": "Jessica", "password": "123456", "email": "jessica@example.edu"}))]
pub struct RegisterBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 150)]
    #[serde(default)]
    pub username: Field,
    #[schema(value_type = String, required = true, min_length = 6)]
    #[serde(default)]
    pub password: Field,
    #[schema(value_type = String, required = true, format = Email)]
    #[serde(default)]
    pub email: Field,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": "true", "user": {"username": "Jessica"}, "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}))]
pub struct AdminLoginAnswer {
    /// `"true"`.
    pub success: &'static str,
    pub user: AdminUser,
    /// Send it back as `Authorization: JWT <token>` (login only; `register` answers without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": "false", "mess": "Invalid User"}))]
pub struct InvalidUser {
    pub success: String,
    pub mess: String,
}
