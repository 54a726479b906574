//! Reads answered by hot standbys, and the log position every answer of the services carries.
//!
//! Every answer of the orchestra and the campus says, in `X-Ensemble-Position`, a point of the
//! log it reflects: for a command, where its events committed (or further); for a read, how far
//! the read models that answered it had come. A client that sends the last position it was
//! given back with its next read never reads an older state, whichever process or standby
//! answers: a standby answers only once its read models hold that position (waiting for one at
//! most `ENSEMBLE_READ_WAIT`), and the primary answers otherwise. Without the header a read is
//! as fresh as the standby that answers it (at most `ENSEMBLE_READ_MAX_LAG` behind).
//!
//! The standby answers with the same routes, on a runtime whose pool is the standby's (the
//! time machine's way, `crate::views`); a standby that fails a read is taken out of rotation
//! and the primary answers that read, so no request fails because of a standby. A refusal
//! (401, 403, 404) from a standby is asked again of the primary: it may be only the standby's
//! lag (a user who just logged in, a record just made), and a refusal must not be stale.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use runtime::replicas::Replicas;
use runtime::LogPosition;

use super::ApiError;

/// The log position an answer reflects, and a read asks for.
pub const POSITION: HeaderName = HeaderName::from_static("x-ensemble-position");

/// A read a standby has not answered in this long is answered by the primary (a standby that
/// stopped answering altogether cannot enforce its own statement timeout).
const STANDBY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the dispatch needs: the standbys, this process's view of the primary's read models,
/// and the services' routes on each standby.
#[derive(Clone)]
pub struct Reads {
    pub replicas: Arc<Replicas>,
    pub projector: Arc<runtime::projector::Projector>,
    pub routers: Arc<Vec<Router>>,
    /// Whether a standby may answer a GET of this path (the auditors' reads follow the log's
    /// horizon on the primary).
    pub standby_may: fn(&str) -> bool,
}

/// Middleware on the services' routes: GETs to a standby where one can answer them, and the
/// position header on every answer.
pub async fn dispatch(State(reads): State<Reads>, request: Request, next: Next) -> Response {
    let wanted = match wanted(request.headers()) {
        Ok(wanted) => wanted,
        Err(msg) => return ApiError::field(msg).into_response(),
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let (response, written) = runtime::bus::writing(next.run(request)).await;
        let at = reads.projector.applied().max(written.unwrap_or_default());
        return with_position(response, at);
    }
    // (A position no standby reaches within ENSEMBLE_READ_WAIT, a made-up one say, is answered
    // by the primary after that wait: this process cannot know whether another has committed
    // that far without asking the primary, which is what the standbys spare it.)
    let standby = match (reads.standby_may)(request.uri().path()) {
        true => reads.replicas.pick(wanted).await,
        false => None,
    };
    if let Some(i) = standby {
        let (parts, body) = request.into_parts();
        let at = reads.replicas.applied(i);
        let copy = Request::from_parts(parts.clone(), Body::empty());
        let router = reads.routers[i].clone();
        match tokio::time::timeout(STANDBY_READ_TIMEOUT, router.oneshot(copy)).await {
            Ok(Ok(response)) if response.status().is_server_error() => reads
                .replicas
                .failed(i, &format!("answered {}", response.status())),
            // A refusal may be the standby's lag (a login, a record or a role it has not
            // replayed yet): the primary has the last word on those.
            Ok(Ok(response)) if refusal(response.status()) => {}
            Ok(Ok(response)) => {
                runtime::metrics::read(&reads.replicas.name(i));
                return with_position(response, at);
            }
            Ok(Err(never)) => match never {},
            Err(_) => reads
                .replicas
                .failed(i, &format!("no answer within {STANDBY_READ_TIMEOUT:?}")),
        }
        let request = Request::from_parts(parts, body);
        return primary(&reads, request, next).await;
    }
    primary(&reads, request, next).await
}

async fn primary(reads: &Reads, request: Request, next: Next) -> Response {
    let at = reads.projector.applied();
    let response = next.run(request).await;
    if !reads.replicas.is_empty() {
        runtime::metrics::read("primary");
    }
    with_position(response, at)
}

/// Answers a standby may give only for want of what the primary already has.
fn refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    )
}

fn with_position(mut response: Response, at: LogPosition) -> Response {
    if at > LogPosition::default() && at < LogPosition::END {
        let text = format!("{}.{}", at.transaction_id, at.position);
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().insert(POSITION, value);
        }
    }
    response
}

/// The position a request asks for: `<transaction>.<position>` as an answer gave it.
fn wanted(headers: &HeaderMap) -> Result<Option<LogPosition>, String> {
    let Some(value) = headers.get(&POSITION) else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "{POSITION} must be a position an earlier answer gave (two whole numbers joined by a dot)"
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    let (transaction, position) = text.trim().split_once('.').ok_or_else(bad)?;
    match (transaction.parse::<i64>(), position.parse::<i64>()) {
        (Ok(t), Ok(p)) if t >= 0 && p >= 0 => Ok(Some(LogPosition {
            transaction_id: t,
            position: p,
        })),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(value: &str) -> Result<Option<LogPosition>, String> {
        let mut headers = HeaderMap::new();
        headers.insert(POSITION, HeaderValue::from_str(value).unwrap());
        wanted(&headers)
    }

    #[test]
    fn positions_are_read_as_answers_write_them() {
        assert_eq!(wanted(&HeaderMap::new()), Ok(None));
        assert_eq!(
            asked("812.40"),
            Ok(Some(LogPosition {
                transaction_id: 812,
                position: 40
            }))
        );
        for bad in ["", "12", "a.b", "-1.3", "1.2.3", "99999999999999999999.1"] {
            assert!(asked(bad).is_err(), "{bad:?} was taken");
        }
        let response = with_position(
            Response::new(Body::empty()),
            LogPosition {
                transaction_id: 812,
                position: 40,
            },
        );
        assert_eq!(response.headers()[POSITION], "812.40");
    }
}
