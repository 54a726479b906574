//! The auditors' pages: the history of the log newest first, one record's timeline with what
//! changed at each step, and what a user saw at a past moment beside what they see now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::diff;
use super::pages::{self, time, Tab};
use super::session::Session;
use super::Console;
use runtime::audit::{self, RecordError, Search};
use runtime::stored::StoredEvent;

pub fn routes() -> OpenApiRouter<Arc<Console>> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(record))
        .routes(routes!(saw))
}

/// The query's non-empty parameters (a form sends its empty fields too).
pub(super) fn params(raw: Option<&str>) -> Result<HashMap<String, String>, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| "the query string is malformed".to_string())?;
    if pairs
        .iter()
        .any(|(_, v)| v.contains('\0') || v.len() > 2000)
    {
        return Err("a parameter holds a NUL character or is too long".into());
    }
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect())
}

fn record_href(aggregate_type: &str, aggregate_id: &str) -> String {
    format!(
        "/console/record?{}",
        serde_urlencoded::to_string([("type", aggregate_type), ("id", aggregate_id)])
            .unwrap_or_default()
    )
}

/// One event: where, when, who, through what, and its payload.
fn event(e: &StoredEvent, names: &HashMap<String, String>, link: bool) -> Markup {
    let meta = |key: &str| {
        e.metadata
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let actor = meta("actor");
    html! {
        article.event data-position=(e.position) data-type=(e.event_type) {
            header {
                span.pos { "#" (e.position) }
                span.kind { (e.event_type) " " small { "v" (e.event_version) } }
                @if link {
                    a.record href=(record_href(&e.aggregate_type, &e.aggregate_id)) {
                        (e.aggregate_type) " " (e.aggregate_id)
                    }
                } @else {
                    span.seq { "step " (e.sequence) }
                }
                time { (time(e.recorded_at)) }
            }
            dl.meta {
                dt { "actor" }
                dd.actor {
                    @if let Some(name) = names.get(&actor) { (name) " " }
                    code { (actor) }
                    " " small { (meta("actor_kind")) }
                }
                dt { "channel" } dd.channel { (meta("channel")) }
                dt { "request" } dd { code.request { (meta("request_id")) } }
            }
            details.payload {
                summary { "payload" }
                (pages::json(&e.payload, &HashSet::new()))
            }
        }
    }
}

/// Actors' names by subject: `(erased)` for a person whose key was destroyed, else the name
/// the read models hold.
async fn names(console: &Console, events: &[StoredEvent]) -> HashMap<String, String> {
    let pool = &console.app.rt.pool;
    let mut names: HashMap<String, String> = audit::actor_names(pool, events)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    let subjects: Vec<&str> = names.keys().map(String::as_str).collect();
    let erased: Vec<String> = sqlx::query_scalar(
        "SELECT subject FROM personal_keys WHERE subject = ANY($1) AND key IS NULL",
    )
    .bind(&subjects)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for subject in erased {
        names.insert(subject, runtime::personal::ERASED_TEXT.into());
    }
    names
}

const HISTORY_PAGE: i64 = 50;

#[utoipa::path(get, path = "/console/history", tag = "console",
    summary = "The log newest first, narrowed by record, actor, channel and time (HTML)",
    params(
        ("type" = Option<String>, Query, description = "Record type, e.g. MemberAbsences"),
        ("id" = Option<String>, Query, description = "Record id"),
        ("actor" = Option<String>, Query, description = "The actor as the log names them, e.g. orchestra-member:3"),
        ("channel" = Option<String>, Query, description = "http, cli, …"),
        ("from" = Option<String>, Query, description = "Recorded at or after (RFC 3339, YYYY-MM-DD HH:MM:SS UTC, or a date)"),
        ("to" = Option<String>, Query, description = "Recorded at or before"),
        ("before" = Option<i64>, Query, description = "Only events before the one at this position (the next page)"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "A bad filter, with the reason (the page)", content_type = "text/html", body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn history(
    State(console): State<Arc<Console>>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params(raw.as_deref());
    let get = |name: &str| params.as_ref().ok().and_then(|p| p.get(name)).cloned();
    let search = params.clone().and_then(|p| {
        let when = |name: &str| {
            p.get(name)
                .map(|t| audit::parse_time(t).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        Ok(Search {
            aggregate_type: p.get("type").cloned(),
            aggregate_id: p.get("id").cloned(),
            actor: p.get("actor").cloned(),
            channel: p.get("channel").cloned(),
            from: when("from")?,
            to: when("to")?,
            before: p
                .get("before")
                .map(|b| {
                    b.parse::<i64>()
                        .map_err(|_| "before must be a position".to_string())
                })
                .transpose()?,
            limit: HISTORY_PAGE,
        })
    });
    let (status, found) = match search {
        Err(e) => (StatusCode::BAD_REQUEST, Err(e)),
        Ok(search) => match audit::newest(&console.app.rt.pool, &search).await {
            Ok(events) => (StatusCode::OK, Ok(events)),
            Err(e) => return crate::http::ApiError::from(e).into_response(),
        },
    };
    let names = match &found {
        Ok(events) => names(&console, events).await,
        Err(_) => HashMap::new(),
    };
    // The next page: the same filters, before the last event shown.
    let older = |events: &[StoredEvent]| {
        let last = events
            .last()
            .filter(|_| events.len() as i64 == HISTORY_PAGE)?;
        let mut next: Vec<(String, String)> = params
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "before")
            .collect();
        next.push(("before".into(), last.position.to_string()));
        next.sort();
        Some(format!(
            "/console/history?{}",
            serde_urlencoded::to_string(&next).unwrap_or_default()
        ))
    };
    let types = audit::aggregate_types();
    let chosen = get("type").unwrap_or_default();
    let field = |name: &str| get(name).unwrap_or_default();
    let body = html! {
        h1 { "History" }
        form.filters method="get" action="/console/history" {
            label { "Record type"
                select name="type" {
                    option value="" { "any" }
                    @for t in &types { option value=(t) selected[*t == chosen] { (t) } }
                }
            }
            label { "Record id" input name="id" value=(field("id")); }
            label { "Actor" input name="actor" value=(field("actor")) placeholder="orchestra-member:3"; }
            label { "Channel" input name="channel" value=(field("channel")) placeholder="http, cli"; }
            label { "From" input name="from" value=(field("from")) placeholder="2026-03-10 08:00"; }
            label { "To" input name="to" value=(field("to")) placeholder="2026-03-12"; }
            button type="submit" { "Show" }
        }
        @match &found {
            Err(e) => p.error role="alert" { (e) },
            Ok(events) => {
                @if events.is_empty() { p.quiet { "No event matches." } }
                section.events {
                    @for e in events { (event(e, &names, true)) }
                }
                @if let Some(href) = older(events) {
                    a.older href=(href) { "Older events →" }
                }
            }
        }
    };
    (
        status,
        pages::page("History", Some(session.frame(Tab::History)), body),
    )
        .into_response()
}

const RECORD_PAGE: usize = 20;
/// A state larger than this (serialised) is not inlined in the timeline: a link opens it
/// alone (the roster's grows with the orchestra: twenty of them would make a page of
/// megabytes).
const INLINE_STATE: usize = 32 * 1024;

#[utoipa::path(get, path = "/console/record", tag = "console",
    summary = "One record's timeline: each event, what it changed, the state after it; the record as of any time (HTML)",
    params(
        ("type" = Option<String>, Query, description = "Record type, e.g. MemberAbsences"),
        ("id" = Option<String>, Query, description = "Record id"),
        ("page" = Option<usize>, Query, description = "Page of 20 events, from 1 (default: the last)"),
        ("as_of" = Option<String>, Query, description = "Also show the record as it stood then"),
        ("step" = Option<usize>, Query, description = "Show only the state after this event of the record (1 = its first)"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "A bad parameter or an unknown record type (the page)", content_type = "text/html", body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn record(
    State(console): State<Arc<Console>>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = match params(raw.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return pages::problem(
                StatusCode::BAD_REQUEST,
                session.frame(Tab::Record),
                "Record",
                &e,
            )
        }
    };
    let types = audit::aggregate_types();
    let chosen = params.get("type").cloned().unwrap_or_default();
    let id = params.get("id").cloned().unwrap_or_default();
    let form = html! {
        form.filters method="get" action="/console/record" {
            label { "Record type"
                select name="type" {
                    @for t in &types { option value=(t) selected[*t == chosen] { (t) } }
                }
            }
            label { "Record id" input name="id" value=(id) required; }
            label { "As of" input name="as_of" value=(params.get("as_of").cloned().unwrap_or_default()) placeholder="2026-03-11 20:00"; }
            button type="submit" { "Open" }
        }
    };
    let frame = |status: StatusCode, content: Markup| {
        (
            status,
            pages::page(
                "Record",
                Some(session.frame(Tab::Record)),
                html! { h1 { "Record" } (form) (content) },
            ),
        )
            .into_response()
    };
    if chosen.is_empty() || id.is_empty() {
        return frame(
            StatusCode::OK,
            html! { p.quiet { "Choose a record: its type and id, as the history shows them." } },
        );
    }
    let pool = &console.app.rt.pool;
    // An unknown type or an unreadable record: the page, with the reason; the database: its
    // usual answer.
    let refused = |e: RecordError| match e {
        RecordError::Database(e) => crate::http::ApiError::from(e).into_response(),
        e => frame(StatusCode::BAD_REQUEST, pages::alert(&e.to_string())),
    };
    // The record as of a moment, if asked.
    let as_of = match params
        .get("as_of")
        .map(|t| audit::parse_time(t))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            return frame(
                StatusCode::BAD_REQUEST,
                html! { p.error role="alert" { "as of: " (e) } },
            )
        }
    };
    let then = match as_of {
        None => None,
        Some(t) => match audit::record(pool, &chosen, &id, Some(t)).await {
            Ok((state, events)) => Some((t, state, events.len())),
            Err(e) => return refused(e),
        },
    };
    let total = match audit::stream_length(pool, &chosen, &id).await {
        Ok(total) => total,
        Err(e) => return refused(e),
    };
    // One step's whole state, alone (a large record's states are not inlined in its timeline).
    if let Some(step) = params.get("step") {
        let step = match step.parse::<usize>() {
            Ok(n) if (1..=total).contains(&n) => n,
            _ => {
                return frame(
                    StatusCode::BAD_REQUEST,
                    html! { p.error role="alert" { "step must be between 1 and " (total) } },
                )
            }
        };
        return match audit::history(pool, &chosen, &id, step - 1..step).await {
            Ok((found, _)) => frame(
                StatusCode::OK,
                html! {
                    @for (e, state) in &found {
                        section.state-alone {
                            h2 { "State after step " (step) " (#" (e.position) " " (e.event_type) ")" }
                            (pages::json(state, &HashSet::new()))
                        }
                    }
                },
            ),
            Err(e) => refused(e),
        };
    }
    let pages_count = total.div_ceil(RECORD_PAGE).max(1);
    let page = match params.get("page").map(|p| p.parse::<usize>()) {
        None => pages_count,
        Some(Ok(p)) if (1..=pages_count).contains(&p) => p,
        Some(_) => {
            return frame(
                StatusCode::BAD_REQUEST,
                html! { p.error role="alert" { "page must be between 1 and " (pages_count) } },
            )
        }
    };
    let start = (page - 1) * RECORD_PAGE;
    let from = start.saturating_sub(1);
    // A page of the timeline, with the state before its first event to diff against.
    let steps = match audit::history(pool, &chosen, &id, from..start + RECORD_PAGE).await {
        Ok((steps, _)) => steps,
        Err(e) => return refused(e),
    };
    let events: Vec<StoredEvent> = steps.iter().map(|(e, _)| e.clone()).collect();
    let names = names(&console, &events).await;
    // Before its first event a record is nothing: its first state's fields show as added.
    let mut previous = Value::Object(Default::default());
    let mut shown = Vec::new();
    for (i, (e, state)) in steps.iter().enumerate() {
        if start > 0 && i == 0 {
            previous = state.clone();
            continue;
        }
        shown.push((e, diff::diff(&previous, state), state));
        previous = state.clone();
    }
    let step_href = |n: i64| format!("{}&step={n}", record_href(&chosen, &id));
    let page_href = |p: usize| {
        let mut q: Vec<(String, String)> = params
            .clone()
            .into_iter()
            .filter(|(k, _)| k != "page")
            .collect();
        q.push(("page".into(), p.to_string()));
        q.sort();
        format!(
            "/console/record?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    frame(
        StatusCode::OK,
        html! {
            p.summary { strong { (chosen) " " (id) } ": " (total) " events" }
            @if let Some((t, state, n)) = &then {
                section.asof {
                    h2 { "As of " (time(*t)) }
                    @if *n == 0 {
                        p.quiet { "The record had no event yet." }
                    } @else {
                        p { "After its first " (n) " events:" }
                        (pages::json(state, &HashSet::new()))
                    }
                }
            }
            @if total == 0 {
                p.quiet { "No event for this record." }
            }
            section.timeline {
                @for (e, changes, state) in &shown {
                    div.step {
                        (event(e, &names, false))
                        details.diff open {
                            summary { "What changed: " (changes.len()) " field" (if changes.len() == 1 { "" } else { "s" }) }
                            (pages::changes(changes, "before", "after"))
                        }
                        @let size = serde_json::to_string(state).map(|t| t.len()).unwrap_or(0);
                        @if size <= INLINE_STATE {
                            details.state {
                                summary { "State after" }
                                (pages::json(state, &changes.iter().map(|(at, _)| at.as_str()).collect()))
                            }
                        } @else {
                            a.state href=(step_href(e.sequence)) { "State after (" (size / 1024) " KiB, on a page of its own)" }
                        }
                    }
                }
            }
            @if pages_count > 1 {
                nav.pages {
                    @for p in 1..=pages_count {
                        @if p == page { span.current { (p) } } @else { a href=(page_href(p)) { (p) } }
                    }
                }
            }
        },
    )
}

#[utoipa::path(get, path = "/console/saw", tag = "console",
    summary = "What a user saw: any GET as it stood at a moment (the time machine) beside its answer now, the differences marked (HTML)",
    params(
        ("path" = Option<String>, Query, description = "The GET path with its own query, e.g. /manager/next/"),
        ("as_of" = Option<String>, Query, description = "RFC 3339, YYYY-MM-DD HH:MM:SS (UTC), a date (its end), or position:N"),
        ("as" = Option<String>, Query, description = "orchestra-member:ID, campus-user:ID, campus-superuser:ID (default: a manager, or you)"),
        ("today" = Option<String>, Query, description = "YYYY-MM-DD: \"today\" then"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "A bad question, with the reason (the page)", content_type = "text/html", body = String),
        pages::SignedOut,
        (status = 503, description = "The moment is still being replayed: ask again (the page, with Retry-After)", content_type = "text/html", body = String),
        crate::http::answers::ReadAnswers,
    ))]
async fn saw(
    State(console): State<Arc<Console>>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    use crate::views::{self, Refused};
    let params = match params(raw.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return pages::problem(
                StatusCode::BAD_REQUEST,
                session.frame(Tab::Saw),
                "What they saw",
                &e,
            )
        }
    };
    let field = |name: &str| params.get(name).cloned().unwrap_or_default();
    let form = html! {
        form.filters method="get" action="/console/saw" {
            label { "Endpoint" input name="path" value=(field("path")) placeholder="/manager/next/" required; }
            label { "As whom" input name="as" value=(field("as")) placeholder="orchestra-member:3 (default: a manager)"; }
            label { "At" input name="as_of" value=(field("as_of")) placeholder="2026-03-11 20:00 or position:41" required; }
            label { "Their today" input name="today" value=(field("today")) placeholder="YYYY-MM-DD (default: that day)"; }
            button type="submit" { "Ask" }
        }
    };
    let frame = |status: StatusCode, content: Markup| {
        (
            status,
            pages::page(
                "What they saw",
                Some(session.frame(Tab::Saw)),
                html! { h1 { "What they saw" } (form) (content) },
            ),
        )
            .into_response()
    };
    if !params.contains_key("path") {
        return frame(
            StatusCode::OK,
            html! { p.quiet { "Any GET of the orchestra or the campus, answered as it stood at a moment for the person named, beside its answer now." } },
        );
    }
    let mut asked: Vec<(&String, &String)> = params.iter().collect();
    asked.sort();
    let question = match views::question(Some(
        &serde_urlencoded::to_string(&asked).unwrap_or_default(),
    )) {
        Ok(q) => q,
        Err(e) => return frame(StatusCode::BAD_REQUEST, pages::alert(&e)),
    };
    let auditor = Some(session.me.id.as_str());
    let then = views::answer_in_time(&console.app, console.services, &question, auditor).await;
    let then = match then {
        Ok(answer) => answer,
        Err(Refused::Bad(reason)) => return frame(StatusCode::BAD_REQUEST, pages::alert(&reason)),
        Err(Refused::Later(reason, seconds)) => {
            let mut response = frame(StatusCode::SERVICE_UNAVAILABLE, pages::alert(&reason));
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
            return response;
        }
        Err(Refused::Failed(e)) => return e.into_response(),
    };
    let now = match views::answer_now(&console.app, console.services, &question, auditor).await {
        Ok(now) => now,
        Err(Refused::Bad(reason)) => return frame(StatusCode::BAD_REQUEST, pages::alert(&reason)),
        Err(Refused::Later(reason, _)) => {
            return frame(StatusCode::SERVICE_UNAVAILABLE, pages::alert(&reason))
        }
        Err(Refused::Failed(e)) => return e.into_response(),
    };
    let parse = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null)
    };
    let (before, after) = (parse(&then.body), parse(&now.1));
    let changes = diff::diff(&before, &after);
    let marks: HashSet<&str> = changes.iter().map(|(at, _)| at.as_str()).collect();
    frame(
        StatusCode::OK,
        html! {
            section.compare {
                div.then {
                    h2 { "Then" }
                    p.when { (then.as_of.time) " · position " (then.as_of.position) " · their today " (then.today) }
                    p { "status " strong.status { (then.status) } }
                    (pages::json(&before, &marks))
                }
                div.now {
                    h2 { "Now" }
                    p.when { (time(chrono::Utc::now())) }
                    p { "status " strong.status { (now.0) } }
                    (pages::json(&after, &marks))
                }
            }
            section.differences {
                h2 { "Differences" }
                @if then.status != now.0 { p { "The status was " (then.status) ", it is " (now.0) "." } }
                (pages::changes(&changes, "then", "now"))
            }
        },
    )
}
