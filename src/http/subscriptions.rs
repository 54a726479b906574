//! Subscriptions over HTTP: an outside system follows the log with the token an operator gave
//! it (`ensemble subscriptions create`). `GET /subscriptions/<name>/events` answers a batch as
//! JSON (long-poll: it waits up to `wait` seconds for something new), or, asked with
//! `Accept: text/event-stream`, streams every event as it commits (Server-Sent Events, the
//! event's position as its `id`, so a browser's `EventSource` resumes by itself).
//! `POST /subscriptions/<name>/ack` records what the system has handled: where the next reader
//! starts when it gives no position. One reader at a time holds a subscription's lease; a
//! stream renews it while it runs and gives it back when the client goes away, and a reader
//! that vanishes without a word loses it after 30 s.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::answers::{ReadAnswers, WriteAnswers};
use super::schema::Message;
use super::{bearer_token, ApiError};
use runtime::subscriptions::{self, Subscription, MAX_BATCH};
use runtime::Runtime;

pub fn routes() -> OpenApiRouter<Arc<Runtime>> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(ack))
        // The body limit of every other route (axum's own is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
}

/// While nothing new comes, a reader looks again this often.
const IDLE_LOOK: Duration = Duration::from_millis(100);
/// The longest a long-poll waits.
const MAX_WAIT_SECONDS: u64 = 30;

fn unauthorized() -> ApiError {
    ApiError::msg(
        StatusCode::UNAUTHORIZED,
        "A subscription's name and its token (Authorization: Bearer <token>) are required.",
    )
}

/// The subscription the path names, if the request carries its token; and the token.
async fn subscription(
    rt: &Runtime,
    parts: &Parts,
    name: &Result<Path<String>, PathRejection>,
) -> Result<(Subscription, String), ApiError> {
    let Ok(Path(name)) = name else {
        return Err(unauthorized());
    };
    let token = bearer_token(parts)
        .map_err(|_| unauthorized())?
        .ok_or_else(unauthorized)?;
    if !subscriptions::valid_name(name) || token.len() > 200 {
        return Err(unauthorized());
    }
    let sub = subscriptions::authenticate(&rt.pool, name, token)
        .await?
        .ok_or_else(unauthorized)?;
    Ok((sub, token.to_string()))
}

/// What a reader asks.
struct Ask {
    after: Option<i64>,
    limit: i64,
    wait: Duration,
    reader: Option<String>,
}

/// What a reader asks; `request_timeout`: how long a request may take in all (a long-poll
/// answers, empty, before it).
fn ask(raw: Option<&str>, request_timeout: Duration) -> Result<Ask, ApiError> {
    let params: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| ApiError::bad_request("the query string is malformed"))?;
    let number =
        |name: &str, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, ApiError> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "{name} must be a whole number from {} to {}",
                                range.start(),
                                range.end()
                            ))
                        })
                })
                .transpose()
        };
    let reader = params.get("reader").cloned();
    if reader
        .as_deref()
        .is_some_and(|r| !super::well_formed_request_id(r))
    {
        return Err(ApiError::bad_request(
            "reader is 1 to 64 of letters, digits and -_.:",
        ));
    }
    Ok(Ask {
        after: number("after", 0..=i64::MAX)?,
        limit: number("limit", 1..=MAX_BATCH)?.unwrap_or(100),
        wait: Duration::from_secs(number("wait", 0..=MAX_WAIT_SECONDS as i64)?.unwrap_or(0) as u64)
            .min(request_timeout.saturating_sub(Duration::from_secs(2))),
        reader,
    })
}

#[utoipa::path(get, path = "/subscriptions/{name}/events", tag = "subscriptions",
    summary = "Follow the log: a batch of events (long-poll JSON), or a stream of them (Server-Sent Events with Accept: text/event-stream)",
    description = "Events after `after` (or the SSE `Last-Event-ID`, or the position last acknowledged) in log order, never skipping one that commits late; only the record types the subscription may read; personal values opened only if it was granted them (`(erased)` once erased), else sealed as in the log. One reader at a time: another gets 409 until the active one goes away (at most 30 s after it stops renewing).",
    security(("subscription" = [])),
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("after" = Option<i64>, Query, description = "Only events after the one at this position"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Events scanned per batch (JSON), 100 by default"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 30, description = "JSON: seconds to wait for something new when there is nothing yet (at most the request timeout less 2 s: an empty answer comes before it)"),
        ("reader" = Option<String>, Query, description = "Who reads (1 to 64 of letters, digits, -_.:): the lease's holder, kept 30 s after its last request; default: one per stream, and for JSON a lease held only while the request runs"),
    ),
    responses(
        (status = 200, description = "`events`: the batch; `next`: the `after` of the next request (the last position scanned). Or a stream of `text/event-stream` events (`id`: position, `event`: type, `data`: the event)", body = Object,
         example = json!({"events": [{"position": 12, "transaction_id": 845, "aggregate_type": "MemberAbsences", "aggregate_id": "1", "sequence": 3, "event_type": "AbsenceProcessed", "event_version": "2.1", "payload": {"AbsenceProcessed": {"absence_id": 1, "processor": 4, "result": "ok", "verdict": "approved"}}, "metadata": {"actor": "orchestra-member:4", "actor_kind": "manager", "channel": "http", "request_id": "0b33dd09-65c9-4a4c-a0c8-2e07daff9d1e"}, "recorded_at": "2026-12-02T05:13:36.000000Z"}], "next": 12})),
        (status = 400, description = "A bad parameter", body = Message),
        (status = 401, description = "No such subscription, or not its token", body = Message),
        (status = 409, description = "Another reader holds the subscription", body = Message),
        ReadAnswers,
    ))]
async fn events(
    State(rt): State<Arc<Runtime>>,
    name: Result<Path<String>, PathRejection>,
    parts: Parts,
    RawQuery(raw): RawQuery,
) -> Response {
    let run = async {
        let (sub, token) = subscription(&rt, &parts, &name).await?;
        let ask = ask(raw.as_deref(), rt.config.http.request_timeout)?;
        let streaming = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let resume = parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|p| *p >= 0);
        let after = ask.after.or(resume).unwrap_or(sub.acked_position);
        // Each request that does not name its reader is a reader of its own.
        let reader = ask
            .reader
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if !subscriptions::claim(&rt.pool, &sub.name, &token, &reader).await? {
            return Err(ApiError::msg(
                StatusCode::CONFLICT,
                "Another reader holds this subscription; it is free again when that one goes away.",
            ));
        }
        if streaming {
            let stopping = parts.extensions.get::<super::Stopping>().cloned();
            return Ok(stream(rt.clone(), sub, token, reader, after, stopping));
        }
        // Long-poll: a batch now, or when something comes within `wait`. A reader that named
        // itself keeps the lease between its requests (30 s); an anonymous one holds it only
        // while its request runs.
        let until = tokio::time::Instant::now() + ask.wait;
        // Given back when the request ends, however it ends (a client that hangs up too: then
        // a moment later).
        let mut lease = ask.reader.is_none().then(|| Lease {
            pool: rt.pool.clone(),
            name: sub.name.clone(),
            reader: reader.clone(),
        });
        let answer = loop {
            let (events, next) = subscriptions::batch(&rt.pool, &sub, after, ask.limit).await?;
            if !events.is_empty() || next != after || tokio::time::Instant::now() >= until {
                let events: Vec<serde_json::Value> =
                    events.iter().map(runtime::audit::event_json).collect();
                break Json(json!({ "events": events, "next": next })).into_response();
            }
            tokio::time::sleep(IDLE_LOOK).await;
        };
        // Before the answer leaves: the client's next request finds the subscription free.
        if let Some(lease) = lease.take() {
            lease.release().await;
        }
        Ok(answer)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A lease given back when this is dropped.
struct Lease {
    pool: sqlx::PgPool,
    name: String,
    reader: String,
}

impl Lease {
    /// Give it back now (and not again on drop).
    async fn release(mut self) {
        let _ = subscriptions::release(&self.pool, &self.name, &self.reader).await;
        self.reader.clear();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.reader.is_empty() {
            return;
        }
        let (pool, name, reader) = (self.pool.clone(), self.name.clone(), self.reader.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = subscriptions::release(&pool, &name, &reader).await;
            });
        }
    }
}

/// The stream's state between two events it sends.
struct Following {
    rt: Arc<Runtime>,
    sub: Subscription,
    token: String,
    reader: String,
    stopping: Option<super::Stopping>,
    after: i64,
    ready: VecDeque<Event>,
    renewed: tokio::time::Instant,
    /// The client went away: the lease goes back at once.
    lease: Option<Lease>,
}

impl Following {
    fn stopping(&self) -> bool {
        self.stopping.as_ref().is_some_and(|s| *s.0.borrow())
    }
}

/// A stream's last word when it no longer holds its subscription.
fn lease_lost() -> Event {
    Event::default().event("lease-lost").data(
        "this stream no longer holds the subscription (deleted or created anew, or its lease \
         lapsed and another reader took it)",
    )
}

/// How often a stream renews its lease, and so how soon it ends once its subscription is
/// deleted or created anew.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// Every event after `after`, as it commits, until the client goes away, the lease is lost
/// (the subscription deleted, say) or the server stops.
fn stream(
    rt: Arc<Runtime>,
    sub: Subscription,
    token: String,
    reader: String,
    after: i64,
    stopping: Option<super::Stopping>,
) -> Response {
    let state = Following {
        lease: Some(Lease {
            pool: rt.pool.clone(),
            name: sub.name.clone(),
            reader: reader.clone(),
        }),
        rt,
        sub,
        token,
        reader,
        stopping,
        after,
        ready: VecDeque::new(),
        renewed: tokio::time::Instant::now(),
    };
    let events = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((Ok::<_, Infallible>(event), Some(state)));
            }
            // The server stops: the lease goes back before the stream ends.
            if state.stopping() {
                if let Some(lease) = state.lease.take() {
                    lease.release().await;
                }
                let end = Event::default()
                    .event("server-stopping")
                    .data("the server is stopping; resume from the last id received");
                return Some((Ok(end), None));
            }
            // Keep the lease while following; a stream that lost it ends with a word why.
            if state.renewed.elapsed() >= RENEW_EVERY {
                let (pool, name) = (&state.rt.pool, &state.sub.name);
                match subscriptions::claim(pool, name, &state.token, &state.reader).await {
                    Ok(true) => state.renewed = tokio::time::Instant::now(),
                    Ok(false) => {
                        return Some((Ok(lease_lost()), None));
                    }
                    // The database away: look again in a moment (the lease has time left).
                    Err(_) => {}
                }
            }
            match subscriptions::batch(&state.rt.pool, &state.sub, state.after, MAX_BATCH).await {
                Ok((events, next)) => {
                    // Nothing leaves for a subscription deleted (or created anew) meanwhile.
                    if !events.is_empty() {
                        let (pool, name) = (&state.rt.pool, &state.sub.name);
                        if let Ok(false) =
                            subscriptions::holds(pool, name, &state.token, &state.reader).await
                        {
                            return Some((Ok(lease_lost()), None));
                        }
                    }
                    for e in &events {
                        state.ready.push_back(
                            Event::default()
                                .id(e.position.to_string())
                                .event(e.event_type.clone())
                                .data(runtime::audit::event_json(e).to_string()),
                        );
                    }
                    let idle = next == state.after;
                    state.after = next;
                    if idle {
                        match state.stopping.as_mut() {
                            Some(stopping) => {
                                tokio::select! {
                                    _ = tokio::time::sleep(IDLE_LOOK) => {}
                                    _ = stopping.0.changed() => {}
                                }
                            }
                            None => tokio::time::sleep(IDLE_LOOK).await,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a subscription's stream could not read the log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Sse::new(events)
        // Also how soon a client that hung up is noticed (at the next write), and its lease
        // given back.
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

/// An acknowledgement.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"position": 12}))]
struct AckBody {
    /// The last event handled, by position: the next reader starts after it.
    position: i64,
}

#[utoipa::path(post, path = "/subscriptions/{name}/ack", tag = "subscriptions",
    summary = "Record what the subscription has handled (never moves back)",
    security(("subscription" = [])),
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = AckBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded (or already past it)", body = Message, example = json!({"msg": "ok"})),
        (status = 400, description = "No event at that position, or a bad body", body = Message),
        (status = 401, description = "No such subscription, or not its token", body = Message),
        WriteAnswers,
    ))]
async fn ack(
    State(rt): State<Arc<Runtime>>,
    name: Result<Path<String>, PathRejection>,
    parts: Parts,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (sub, _) = subscription(&rt, &parts, &name).await?;
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::msg(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The body is over 64 KiB.",
            ))
        }
        Err(_) => {
            return Err(ApiError::bad_request(
                "the body must be JSON: {\"position\": <the last event handled>}",
            ))
        }
    };
    if !subscriptions::ack(&rt.pool, &sub.name, body.position).await? {
        return Err(ApiError::bad_request(format!(
            "no event is at position {}",
            body.position
        )));
    }
    Ok(Json(json!({"msg": "ok"})))
}
