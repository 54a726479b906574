//! Credentials and actors as every service reads them off a request.

use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::{client_request_id, request_id};
use runtime::bus::Actor;

/// An `Authorization` header that is not `JWT <token>` or `Bearer <token>`.
#[derive(Debug)]
pub struct MalformedAuthorization;

/// The token of `Authorization: JWT <token>` or `Bearer <token>`, if the header is there.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, MalformedAuthorization> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| MalformedAuthorization)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(MalformedAuthorization)?;
    if !(scheme.eq_ignore_ascii_case("jwt") || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(MalformedAuthorization);
    }
    Ok(Some(token.trim()))
}

/// The actor of an HTTP request by `subject` (opaque) in `role`.
pub fn http_actor(
    kind: &'static str,
    subject: &str,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Actor {
    Actor {
        kind,
        name: subject.to_string(),
        request_id: request_id(headers),
        client_request_id: client_request_id(headers),
        channel: "http",
        append_by: extensions
            .get::<crate::http::AppendBy>()
            .map(|deadline| deadline.0),
        requires: None,
        holds: None,
    }
}

/// The client's address (the TCP peer: a proxy's address behind a proxy).
pub fn client_address(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| peer.0.ip())
}
