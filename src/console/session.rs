//! Who is at the console: a campus superuser who logged in with the `adminLogIn/` password.
//! The session is a token of the console's own audience (worthless to the REST API, and a
//! REST token is worthless here) in an `HttpOnly`, `SameSite=Strict` cookie on `/console`
//! that expires after [`TTL_SECONDS`]; each request checks that the superuser is still
//! active, so disabling one ends their sessions at once. Every state-changing form carries a
//! CSRF token derived from the session's token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{pages, Console};
use crate::campus::CurrentSuperuser;
use crate::http::ApiError;

pub const COOKIE: &str = "ensemble_console";
const AUDIENCE: &str = "ensemble-console";
/// Eight hours: a working day.
pub const TTL_SECONDS: i64 = 8 * 3600;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
}

pub struct Session {
    pub me: CurrentSuperuser,
    token: String,
}

impl Session {
    /// The token every state-changing form of this session must carry: derived from the
    /// session's own token, which no other site can read (an `HttpOnly` cookie).
    pub fn csrf(&self) -> String {
        csrf_of(&self.token)
    }

    /// Whether `given` is this session's CSRF token (compared as digests: no early exit on
    /// the first differing byte of the token itself).
    pub fn checks(&self, given: Option<&str>) -> bool {
        let digest = |s: &str| Sha256::digest(s.as_bytes());
        given.is_some_and(|g| digest(g) == digest(&self.csrf()))
    }

    /// The frame of a page of this session, on `tab`.
    pub fn frame(&self, tab: pages::Tab) -> pages::Frame {
        pages::Frame {
            tab,
            subject: self.subject(),
            csrf: self.csrf(),
        }
    }

    /// The subject the log names this superuser by (who ran a verify or a rebuild).
    pub fn subject(&self) -> String {
        aggregates::campus::superusers::superuser_subject(&self.me.id)
    }
}

fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("ensemble-console-csrf\0{token}").as_bytes());
    runtime::chain::hex(&digest[..16])
}

/// A new session's cookie for superuser `id`.
pub fn open(console: &Console, id: &str, headers: &HeaderMap) -> String {
    let token = console.app.rt.jwt.issue_for(
        AUDIENCE,
        Claims {
            sub: id.to_string(),
        },
        TTL_SECONDS,
    );
    format!(
        "{COOKIE}={token}; Path=/console; Max-Age={TTL_SECONDS}; HttpOnly; SameSite=Strict{}",
        secure(headers)
    )
}

/// The cookie that ends a session.
pub fn close(headers: &HeaderMap) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        secure(headers)
    )
}

/// `; Secure` behind a proxy that says the browser came over HTTPS (a browser drops a secure
/// cookie on plain HTTP, where one tries the console locally).
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

/// The session cookie's value, from any `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 4096)
}

impl FromRequestParts<Arc<Console>> for Session {
    /// The login form (401) for anyone without a live session.
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Response> {
        let signed_out = || pages::login(StatusCode::UNAUTHORIZED, None).into_response();
        let token = cookie(&parts.headers).ok_or_else(signed_out)?.to_string();
        let claims: Claims = console
            .app
            .rt
            .jwt
            .verify(AUDIENCE, &token)
            .ok_or_else(signed_out)?;
        match CurrentSuperuser::active(parts, &console.app.campus, claims.sub).await {
            Ok(me) => Ok(Self { me, token }),
            Err(ApiError::Body(StatusCode::UNAUTHORIZED, _)) => Err(signed_out()),
            // The database did not answer: its usual answer (a 503 with Retry-After, say).
            Err(e) => Err(e.into_response()),
        }
    }
}
