//! The superusers' bodies as the OpenAPI document describes them (documentation only).

use serde::Serialize;
use utoipa::ToSchema;

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
