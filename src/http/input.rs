//! Request bodies arrive as JSON or as `application/x-www-form-urlencoded`; both are read into
//! the route's own body type ([`Body`]), the type its OpenAPI description shows, whose fields
//! ([`Field`]) hold what was sent and are then read with lenient typed accessors (a form has
//! only strings): every wrong field can be reported at once, in each service's words.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::ApiError;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The fields of a body, as sent.
#[derive(Debug, Default)]
struct Input(Map<String, Value>);

/// A request body as the route's body type `T` (whose fields are [`Field`]s: any value a client
/// sends deserialises, and the handler reads each with the accessor it needs).
#[derive(Debug)]
pub struct Body<T>(pub T);

/// One field of a body, as sent: absent (None), or any JSON value, null included (a form's are
/// strings). Its documented type is given on the body type (`#[schema(value_type = ...)]`).
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(transparent)]
pub struct Field(pub Option<Value>);

impl<'de> serde::Deserialize<'de> for Field {
    /// Present, even as null (a null is not an absence: a PUT clears what it nulls).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|v| Self(Some(v)))
    }
}

/// How long a request body may take to arrive (a request extension set by the router).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

fn too_large() -> ApiError {
    ApiError::msg(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than {MAX_BODY_BYTES} bytes."),
    )
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Input(fields) = Input::from_request(req, state).await?;
        // Every field of a body type is a `Field`, which takes any value: this fails only for
        // a body type written otherwise.
        serde_json::from_value(Value::Object(fields))
            .map(Body)
            .map_err(ApiError::internal)
    }
}

impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let deadline = req
            .extensions()
            .get::<BodyTimeout>()
            .map_or(std::time::Duration::from_secs(30), |t| t.0);
        let bytes = tokio::time::timeout(
            deadline,
            axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES),
        )
        .await
        .map_err(|_| {
            ApiError::msg(
                StatusCode::REQUEST_TIMEOUT,
                "The request body took too long to arrive.",
            )
        })?
        .map_err(|_| too_large())?;
        Self::parse(&bytes, form)
    }
}

/// Whether every name and value of a form body is UTF-8 once its `%XX` escapes are decoded.
fn form_is_utf8(bytes: &[u8]) -> bool {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    bytes.split(|&b| b == b'&').all(|pair| {
        let mut decoded = Vec::with_capacity(pair.len());
        let mut i = 0;
        while i < pair.len() {
            match (
                pair[i],
                pair.get(i + 1).copied().and_then(hex),
                pair.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 3;
                }
                (b, _, _) => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        decoded
            .split(|&b| b == b'=')
            .all(|part| std::str::from_utf8(part).is_ok())
    })
}

impl Input {
    fn parse(bytes: &[u8], form: bool) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        if form {
            let malformed = || ApiError::Malformed {
                msg: "Malformed form body.".into(),
                drf: "Form parse error.".into(),
            };
            // Decoding replaces bytes that are not UTF-8; refuse them instead, as JSON does.
            if !form_is_utf8(bytes) {
                return Err(malformed());
            }
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(bytes).map_err(|_| malformed())?;
            return Ok(Self(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::Malformed {
                msg: "The body must be a JSON object.".into(),
                drf: "JSON parse error - the body must be a JSON object".into(),
            }),
            Err(e) => Err(ApiError::Malformed {
                msg: format!("Malformed JSON: {e}."),
                drf: format!("JSON parse error - {e}"),
            }),
        }
    }
}

impl Field {
    pub fn value(&self) -> Option<&Value> {
        self.0.as_ref()
    }

    /// A text field (called `name` in errors); numbers are taken as their text. Missing or
    /// null: None. NUL is refused here, at the edge: PostgreSQL text cannot hold it, so it
    /// would make the event unprojectable.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match &self.0 {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(ApiError::field(format!(
                "{name} must not contain NUL characters."
            ))),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::field(format!("{name} must be a string."))),
        }
    }

    /// A text field that must be present and not blank.
    pub fn required_text(&self, name: &str) -> Result<String, ApiError> {
        match self.text(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ApiError::field(format!("{name} is required."))),
        }
    }

    /// A boolean: JSON true/false, or in a form `true`/`false`, `True`/`False`, `1`/`0`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        let bad = || ApiError::field(format!("{name} must be true or false."));
        match &self.0 {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(bad()),
            },
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
        }
    }
}

/// The one parameter of a path, as text. A segment that is not even valid UTF-8 names no
/// record: 404 in the JSON shape, not axum's plain-text rejection.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| Self(s))
            .map_err(|_| ApiError::not_found())
    }
}

/// `YYYY-MM-DD`, month and day possibly unpadded (`2020-3-12`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.trim().split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || !(1..=2).contains(&m.len())
        || !(1..=2).contains(&d.len())
        || ![y, m, d]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// A record id in a path: a positive integer, or the record does not exist (404).
pub fn parse_id(s: &str) -> Result<i64, ApiError> {
    match s.parse::<i64>() {
        Ok(id) if id > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_may_be_unpadded_but_must_be_real() {
        assert_eq!(
            parse_date("2020-3-12"),
            NaiveDate::from_ymd_opt(2020, 3, 12)
        );
        assert_eq!(
            parse_date("2020-03-12"),
            NaiveDate::from_ymd_opt(2020, 3, 12)
        );
        for bad in [
            "2020-02-30",
            "2020/03/12",
            "20-3-12",
            "2020-3-12-1",
            "2020-+3-12",
            "",
            "x",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(parse_id("12").unwrap(), 12);
        for bad in ["0", "-1", "+1", "abc", "99999999999999999999", "1.5"] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    #[derive(Default, serde::Deserialize)]
    #[serde(default)]
    struct Decision {
        permission: Field,
        result: Field,
    }

    fn decision(bytes: &[u8], form: bool) -> Result<Decision, ApiError> {
        let Input(fields) = Input::parse(bytes, form)?;
        Ok(serde_json::from_value(Value::Object(fields)).unwrap())
    }

    #[test]
    fn a_form_that_is_not_utf8_is_refused_like_json() {
        assert!(Input::parse(b"name=%FF%FE", true).is_err());
        assert!(Input::parse(b"name=%E4%BD%A0%E5%A5%BD&x=a%2Bb+c", true).is_ok());
        assert!(Input::parse(b"name=%zz", true).is_ok(), "a stray % is text");
    }

    #[test]
    fn form_and_json_bodies_read_alike() {
        let form = decision(b"permission=false&result=ok", true).unwrap();
        let json = decision(br#"{"permission": false, "result": "ok"}"#, false).unwrap();
        for body in [form, json] {
            assert_eq!(body.permission.bool("permission").unwrap(), Some(false));
            assert_eq!(body.result.text("result").unwrap().as_deref(), Some("ok"));
        }
        assert!(decision(b"[1]", false).is_err());
        assert!(decision(b"{", false).is_err());
        let maybe = decision(br#"{"permission": "maybe", "other": [1]}"#, false).unwrap();
        assert!(maybe.permission.bool("permission").is_err());
        assert!(maybe.result.text("result").unwrap().is_none());
    }
}
