//! What every campus endpoint shares: DRF-shaped field errors over a body's fields (every
//! wrong field at once, in the document's words), query parameters, `limit` / `offset` pages,
//! and the lookups' envelope.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::http::{ApiError, Field};

pub const REQUIRED: &str = "该字段是必填项。";
pub const BLANK: &str = "该字段不能为空。";
pub const NOT_AN_INTEGER: &str = "请填写合法的整数值。";
pub const HIDDEN_CHARACTER: &str = "该字段不能包含不可见的格式字符（如零宽字符或双向控制字符）。";
pub const NOT_A_WEB_URL: &str = "请输入合法的 http 或 https 网址。";

/// An absolute `http`/`https` URL with a host and no credentials, written out in full
/// (`https://host/...`): what a page may link or load as an image (never `javascript:`,
/// `data:`, `https:host` or the like). Its normalised form (what is stored and shown), or None.
pub fn web_url(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let written_out = lower.starts_with("http://") || lower.starts_with("https://");
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if !written_out
        || authority.is_empty()
        || authority.contains(['@', '\\'])
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    (matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none())
    .then(|| parsed.to_string())
}

/// Names (organisations, blocks, categories, addresses, users): DRF's `max_length`.
pub const MAX_NAME: usize = 100;
/// Free text (descriptions, signatures, feedback).
pub const MAX_TEXT: usize = 2000;
/// URLs (avatars).
pub const MAX_URL: usize = 1000;

pub fn invalid_pk(value: &str) -> String {
    format!("无效主键 “{value}” － 对象不存在。")
}

/// Field errors collected over a whole body, answered together (DRF's shape).
#[derive(Default)]
pub struct Fields {
    errors: Map<String, Value>,
}

impl Fields {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .errors
            .entry(field.to_string())
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(Value::String(message.into()));
        }
    }

    /// A text field; None (and an error noted) when it is missing while `required`, blank,
    /// too long, or holds control characters where `single_line`.
    pub fn text(
        &mut self,
        input: &Field,
        field: &str,
        required: bool,
        max: usize,
        single_line: bool,
    ) -> Option<String> {
        let value = match input.value() {
            None | Some(Value::Null) => {
                if required {
                    self.add(field, REQUIRED);
                }
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                self.add(field, "请填写合法的字符串。");
                return None;
            }
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            if required {
                self.add(field, BLANK);
                return None;
            }
            return Some(String::new());
        }
        if trimmed.chars().count() > max {
            self.add(field, format!("请确保这个字段不超过 {max} 个字符。"));
            return None;
        }
        let bad = |c: char| c == '\0' || (single_line && c.is_control());
        if trimmed.chars().any(bad) {
            self.add(field, "该字段不能包含控制字符。");
            return None;
        }
        // A single line (a name, a title, an address) shows what it says: no zero-width or
        // bidirectional format characters (aggregates::text).
        if single_line && aggregates::text::hidden_character(trimmed).is_some() {
            self.add(field, HIDDEN_CHARACTER);
            return None;
        }
        Some(trimmed.to_string())
    }

    /// An `http`/`https` URL (an avatar): absent, or blank to clear it, gives None / Some("").
    pub fn url(&mut self, input: &Field, field: &str, max: usize) -> Option<String> {
        let url = self.text(input, field, false, max, true)?;
        if url.is_empty() {
            return Some(url);
        }
        match web_url(&url) {
            Some(url) if url.chars().count() <= max => Some(url),
            _ => {
                self.add(field, NOT_A_WEB_URL);
                None
            }
        }
    }

    /// A record id (a positive integer; JSON number or text). Missing: required error.
    pub fn id(&mut self, input: &Field, field: &str) -> Option<(i64, String)> {
        let raw = match input.value() {
            None | Some(Value::Null) => {
                self.add(field, REQUIRED);
                return None;
            }
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.add(field, REQUIRED);
                return None;
            }
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => {
                self.add(field, NOT_AN_INTEGER);
                return None;
            }
        };
        match parse_positive(&raw) {
            Some(id) => Some((id, raw)),
            // An integer that names nothing, or not an integer at all.
            None if raw.parse::<i64>().is_ok() => {
                self.add(field, invalid_pk(&raw));
                None
            }
            None => {
                self.add(field, NOT_AN_INTEGER);
                None
            }
        }
    }

    /// 400 with every error noted, if any.
    pub fn check(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Body(StatusCode::BAD_REQUEST, self.errors.into()))
        }
    }
}

/// A 400 naming one field.
pub fn field_error(field: &str, message: &str) -> ApiError {
    ApiError::Body(StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

pub fn parse_positive(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The query string's parameters (the last of each name wins; a malformed one is ignored).
pub struct Query(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
        // PostgreSQL text cannot hold NUL: refused here, never a failed query.
        if let Some((name, _)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let name: String = name.chars().filter(|c| *c != '\0').take(32).collect();
            return Err(field_error(&name, "该字段不能包含控制字符。"));
        }
        Ok(Self(pairs.into_iter().collect()))
    }
}

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `limit` / `offset` of a list, and where to link the pages.
pub struct Page {
    pub limit: Option<i64>,
    pub offset: i64,
    /// The request's path and its other query parameters, in their order and as they were
    /// sent.
    path: String,
    query: Vec<String>,
    /// `ENSEMBLE_PUBLIC_URL`: links are absolute under it; None: relative to the path.
    base: Option<String>,
}

pub const MAX_LIMIT: i64 = 1000;

impl FromRequestParts<std::sync::Arc<super::context::Campus>> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &std::sync::Arc<super::context::Campus>,
    ) -> Result<Self, ApiError> {
        let Query(query) = Query::from_request_parts(parts, app).await?;
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            match query.get(name).map(|v| v.trim()) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(Some)
                    .ok_or_else(|| field_error(name, "请填写合法的整数值。")),
            }
        };
        let limit = number("limit")?.map(|l| l.clamp(1, MAX_LIMIT));
        let offset = number("offset")?.unwrap_or(0);
        let others: Vec<String> = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                !pair.is_empty() && name != "limit" && name != "offset"
            })
            .map(str::to_string)
            .collect();
        Ok(Self {
            limit,
            offset: if limit.is_some() { offset } else { 0 },
            path: parts.uri.path().to_string(),
            query: others,
            // Never the request's `Host`: anyone can send any.
            base: app.rt.config.public_url.clone(),
        })
    }
}

impl Page {
    /// The request's path and query as far as the answer depends on them: the window and the
    /// other parameters, in their order.
    pub fn asked(&self) -> String {
        format!(
            "{}?{}&limit={:?}&offset={}",
            self.path,
            self.query.join("&"),
            self.limit,
            self.offset
        )
    }

    /// The rows it asks for.
    pub fn window(&self) -> projections::campus::read::Window {
        projections::campus::read::Window {
            limit: self.limit,
            offset: self.offset,
        }
    }

    /// The rows as the answer: a plain list, or DRF's page when `limit` was given. Its
    /// `next` and `previous` keep the request's other parameters, as DRF's do.
    pub fn answer(&self, rows: Vec<Value>, count: impl FnOnce() -> i64) -> Value {
        let Some(limit) = self.limit else {
            return Value::Array(rows);
        };
        let count = count();
        let link = |offset: i64| {
            let mut query = self.query.clone();
            query.push(format!("limit={limit}"));
            if offset > 0 {
                query.push(format!("offset={offset}"));
            }
            let query = query.join("&");
            format!(
                "{}{}?{query}",
                self.base.as_deref().unwrap_or_default(),
                self.path
            )
        };
        let next = (self.offset.saturating_add(limit) < count)
            .then(|| link(self.offset.saturating_add(limit)));
        let previous = (self.offset > 0).then(|| link(self.offset.saturating_sub(limit).max(0)));
        json!({ "count": count, "next": next, "previous": previous, "results": rows })
    }
}

/// The `{status, msg, results}` envelope of the lookups.
pub fn envelope(results: Value) -> Value {
    json!({ "status": 0, "msg": "ok", "results": results })
}

pub fn envelope_error(msg: &str) -> Value {
    json!({ "status": 1, "msg": msg })
}

/// `?user=&org=` as two ids (400 naming what is wrong).
pub fn pair(query: &Query) -> Result<(i64, i64), ApiError> {
    let mut fields = Fields::default();
    let mut get = |name: &str| match query.get(name) {
        None | Some("") => {
            fields.add(name, REQUIRED);
            None
        }
        Some(raw) => parse_positive(raw).or_else(|| {
            fields.add(name, NOT_AN_INTEGER);
            None
        }),
    };
    let (user, org) = (get("user"), get("org"));
    fields.check()?;
    Ok((user.unwrap_or_default(), org.unwrap_or_default()))
}
