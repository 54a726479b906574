//! The operators' pages: the hash chain with `events verify` run in the background, and the
//! read models (position, lag and rows, lag over the last hour), the mail outbox with its
//! retry, blue/green rebuilds with their progress, and the process's health.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::{Sample, SAMPLE_EVERY};
use super::pages::{self, time, Tab};
use super::session::Session;
use super::{csrf_refused, Console, CsrfForm, Fields};
use runtime::chain::Verdict;

pub fn routes() -> OpenApiRouter<Arc<Console>> {
    OpenApiRouter::new()
        .routes(routes!(integrity))
        .routes(routes!(verify))
        .routes(routes!(verify_progress))
        .routes(routes!(operations))
        .routes(routes!(rebuild))
        .routes(routes!(rebuild_progress))
        .routes(routes!(lag_chart))
        .routes(routes!(retry_mail))
}

const HTML: &str = "text/html";

fn verify_fragment(console: &Console) -> Markup {
    pages::progress(
        "verify-progress",
        "/console/integrity/progress",
        console.jobs.verify.snapshot().as_ref(),
    )
}

#[utoipa::path(get, path = "/console/integrity", tag = "console",
    summary = "The hash chain: its head, the last events verify and its result, a verify to run (HTML)",
    responses(
        (status = 200, description = "The page", content_type = HTML, body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn integrity(State(console): State<Arc<Console>>, session: Session) -> Response {
    let rt = &console.app.rt;
    let head = async {
        let mut conn = rt.pool.acquire().await?;
        runtime::chain::head(&mut conn).await
    }
    .await;
    let head = match head {
        Ok(head) => head,
        Err(e) => return crate::http::ApiError::from(e).into_response(),
    };
    let last = match runtime::audit::last_verification(&rt.pool).await {
        Ok(last) => last,
        Err(e) => return crate::http::ApiError::from(e).into_response(),
    };
    let body = html! {
        h1 { "Integrity" }
        section.chain {
            h2 { "The chain's head" }
            @match &head {
                None => p.quiet { "Empty: no event is chained yet." },
                Some((at, link)) => {
                    p { "Position " strong.head-position { (at.position) } " (transaction " (at.transaction_id) ")" }
                    p { "Link " code.link { (runtime::chain::hex(link)) } }
                }
            }
        }
        section.last-verify {
            h2 { "The last events verify" }
            @match &last {
                None => p.quiet { "Never run on this database." },
                Some(v) => {
                    p { (time(v.finished_at)) " by " code { (v.run_by) } " (took " (format!("{:.1}", (v.finished_at - v.started_at).num_milliseconds() as f64 / 1000.0)) " s)" }
                    @if v.intact {
                        p.ok.verdict { "Intact: " (v.checked) " events chained, " (v.unchained) " not chained yet"
                            @if let Some(h) = v.head_position { "; head at position " (h) } }
                    } @else {
                        p.error.verdict role="alert" {
                            "Broken at position " strong.bad-position { (v.bad_position.unwrap_or_default()) } ": "
                            (v.reason.clone().unwrap_or_default())
                        }
                    }
                }
            }
        }
        section.run-verify {
            h2 { "Verify now" }
            p.hint { "Recomputes every link from the log, in one snapshot, in the background: you may leave this page." }
            form method="post" action="/console/integrity/verify" {
                input type="hidden" name="csrf" value=(session.csrf());
                button type="submit" id="run-verify" { "Run events verify" }
            }
            (verify_fragment(&console))
        }
    };
    pages::page("Integrity", Some(session.frame(Tab::Integrity)), body).into_response()
}

#[utoipa::path(post, path = "/console/integrity/verify", tag = "console",
    summary = "Start events verify in the background (one at a time per process)",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Started (or already running): back to /console/integrity"),
        pages::SignedOut,
        (status = 403, description = "Without this session's CSRF token", content_type = HTML, body = String),
        crate::http::answers::WriteAnswers,
    ))]
async fn verify(State(console): State<Arc<Console>>, session: Session, form: Fields) -> Response {
    if !session.checks(form.get("csrf")) {
        return csrf_refused(&session, Tab::Integrity);
    }
    let by = format!("console:{}", session.subject());
    let rt = console.app.rt.clone();
    console.jobs.verify.start(
        "events verify".into(),
        by.clone(),
        move |report| async move {
            let progress = move |done, total| report(done, total);
            match runtime::audit::verify(&rt.tx_pool, &by, &progress).await {
                Ok(Verdict::Intact {
                    checked, unchained, ..
                }) => Ok(format!(
                    "intact: {checked} events chained, {unchained} not chained yet"
                )),
                Ok(Verdict::Broken { position, reason }) => Err(format!(
                    "the log does not match its hash chain at position {position}: {reason}"
                )),
                Err(e) => Err(format!("could not verify: {e}")),
            }
        },
    );
    Redirect::to("/console/integrity").into_response()
}

#[utoipa::path(get, path = "/console/integrity/progress", tag = "console",
    summary = "The running verify's progress (an HTML fragment the page polls)",
    responses(
        (status = 200, description = "The fragment", content_type = HTML, body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn verify_progress(State(console): State<Arc<Console>>, _: Session) -> Response {
    pages::fragment(verify_fragment(&console))
}

fn rebuild_fragment(console: &Console) -> Markup {
    pages::progress(
        "rebuild-progress",
        "/console/operations/progress",
        console.jobs.rebuild.snapshot().as_ref(),
    )
}

/// The lag of each read model over the last hour, as an SVG chart (no script, no style from
/// elsewhere: classes only).
fn chart(samples: &[Sample]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let window = (SAMPLE_EVERY.as_secs_f64() * 120.0).max(1.0);
    let now = chrono::Utc::now();
    let mut names: Vec<&str> = samples
        .iter()
        .flat_map(|(_, lags)| lags.iter().map(|(n, _)| n.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    names.sort();
    let top = samples
        .iter()
        .flat_map(|(_, lags)| lags.iter().map(|(_, l)| *l))
        .max()
        .unwrap_or(0)
        .max(1);
    let line = |name: &str| -> String {
        samples
            .iter()
            .filter_map(|(at, lags)| {
                let lag = lags.iter().find(|(n, _)| n == name)?.1;
                let age = (now - *at).num_milliseconds() as f64 / 1000.0;
                let x = W - (age / window * W).min(W);
                let y = H - (lag as f64 / top as f64) * (H - 10.0);
                Some(format!("{x:.1},{y:.1}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        div.lag-chart id="lag-chart" data-poll="/console/operations/lag" data-running="true" data-every=(SAMPLE_EVERY.as_secs()) {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label="lag of each read model over the last hour" {
                line.axis x1="0" y1=(H) x2=(W) y2=(H) {}
                @for (i, name) in names.iter().enumerate() {
                    @let points = line(name);
                    polyline class=(format!("series s{}", i % 6)) points=(points) {}
                    // The latest sample as a dot: one sample is no line yet.
                    @if let Some((x, y)) = points.rsplit(' ').next().and_then(|p| p.split_once(',')) {
                        circle class=(format!("dot s{}", i % 6)) cx=(x) cy=(y) r="3" {}
                    }
                }
            }
            p.legend {
                "Samples: " span.samples { (samples.len()) } " (every " (SAMPLE_EVERY.as_secs()) " s, the last hour); top of the scale: " (top) " events. "
                @for (i, name) in names.iter().enumerate() {
                    span class=(format!("key s{}", i % 6)) { "■ " (name) } " "
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/console/operations", tag = "console",
    summary = "Read models (position, lag, rows, lag over the last hour), the mail outbox, rebuilds, health (HTML)",
    params(("retried" = Option<i64>, Query, description = "A mail just queued again (the notice after a retry)")),
    responses(
        (status = 200, description = "The page", content_type = HTML, body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn operations(
    State(console): State<Arc<Console>>,
    session: Session,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let rt = &console.app.rt;
    let notice = super::audit::params(raw.as_deref())
        .ok()
        .and_then(|p| p.get("retried")?.parse::<i64>().ok());
    let gathered = async {
        let standings = runtime::audit::standings(&rt.pool, &rt.projections).await?;
        let mail = runtime::mailer::list(&rt.pool, false, 50).await?;
        let failed = runtime::mailer::list(&rt.pool, true, 50).await?;
        let mut conn = rt.pool.acquire().await?;
        let holder = runtime::runner::horizon_holder(&mut conn, 5.0).await?;
        Ok::<_, sqlx::Error>((standings, mail, failed, holder))
    }
    .await;
    let (standings, mail, failed, holder) = match gathered {
        Ok(all) => all,
        Err(e) => return crate::http::ApiError::from(e).into_response(),
    };
    let ready = crate::http::health::readiness(rt).await;
    let outbox = runtime::metrics::outbox(rt).await.ok();
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096 / (1024 * 1024));
    let rebuildable: Vec<&str> = runtime::runner::rebuildable(&rt.projections, &[] as &[&str])
        .unwrap_or_default()
        .iter()
        .map(|p| p.name())
        .collect();
    let body = html! {
        h1 { "Operations" }
        section.health {
            h2 { "This process" }
            dl.meta {
                dt { "health" } dd.ok { "up" }
                dt { "readiness" }
                @match &ready {
                    Ok(()) => dd.ok.readiness { "ready" },
                    Err(why) => dd.error.readiness { "not ready: " (why) },
                }
                @if let Some((pending, oldest)) = outbox {
                    dt { "mails waiting" } dd.pending { (pending) @if let Some(age) = oldest { " (oldest " (format!("{age:.0}")) " s)" } }
                }
                @if let Some(rss) = rss { dt { "memory (RSS)" } dd { (rss) " MiB" } }
                dt { "time-machine replays built" } dd { (rt.views.built()) }
            }
        }
        section.projections {
            h2 { "Read models" }
            table.standings {
                thead { tr { th { "projection" } th { "applied (tx/position)" } th { "lag" } th { "rows" } } }
                tbody {
                    @for s in &standings {
                        tr data-projection=(s.name) {
                            td { code { (s.name) } }
                            td { (s.applied.transaction_id) "/" (s.applied.position) }
                            td.lag { (s.lag) }
                            td { @for (t, n) in &s.rows { (t) "=" (n) " " } }
                        }
                    }
                }
            }
            @if let Some(h) = &holder {
                p.error role="alert" { "Held back by pid " (h.pid) " (" (h.application_name) ", " (h.state) ") in a transaction for " (h.age as u64) " s: nothing committed after it began is projected until it ends." }
            }
            h3 { "Lag over the last hour" }
            (chart(&console.lags.snapshot()))
        }
        section.rebuild {
            h2 { "Rebuild" }
            p.hint { "Blue/green: built beside the live tables and swapped in at the end; the server keeps serving. One rebuild at a time on a database." }
            form method="post" action="/console/operations/rebuild" {
                input type="hidden" name="csrf" value=(session.csrf());
                @for name in &rebuildable {
                    label.check { input type="checkbox" name="projection" value=(name); " " (name) }
                }
                button type="submit" id="run-rebuild" { "Rebuild (none ticked: all)" }
            }
            (rebuild_fragment(&console))
        }
        section.outbox {
            h2 { "Mail outbox" }
            @if let Some(id) = &notice {
                p.ok.notice role="status" { "Mail " (id) " is queued again." }
            }
            @if !failed.is_empty() {
                h3 { "Failed" }
                (mail_table(&session, &failed))
            }
            h3 { "Newest" }
            (mail_table(&session, &mail))
        }
    };
    pages::page("Operations", Some(session.frame(Tab::Operations)), body).into_response()
}

fn mail_table(session: &Session, rows: &[runtime::mailer::OutboxRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.quiet { "None." }
        } @else {
            table.mail {
                thead { tr { th { "id" } th { "state" } th { "attempts" } th { "recipient" } th { "subject" } th { "created" } th { "last error" } th {} } }
                tbody {
                    @for m in rows {
                        tr data-mail=(m.id) class=(m.state) {
                            td { (m.id) }
                            td.state { (m.state) }
                            td { (m.attempts) }
                            td { (m.recipient) }
                            td { (m.subject) }
                            td { (time(m.created_at)) }
                            td.last-error { @if m.state != "sent" { (m.last_error.clone().unwrap_or_default()) } }
                            td {
                                @if m.state == "failed" {
                                    form method="post" action="/console/mail/retry" {
                                        input type="hidden" name="csrf" value=(session.csrf());
                                        input type="hidden" name="id" value=(m.id);
                                        button type="submit" class="retry" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A rebuild's form, as the document shows it.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"csrf": "2fde37b68a9287c6f4b81b65cd97d838", "projection": ["orchestra_absences"]}))]
#[allow(dead_code)] // described, never built: the handler reads the fields itself
struct RebuildForm {
    csrf: String,
    /// Repeated, one per projection; none: all that can be rebuilt.
    projection: Vec<String>,
}

#[utoipa::path(post, path = "/console/operations/rebuild", tag = "console",
    summary = "Start a blue/green rebuild in the background (the CLI's projections rebuild)",
    request_body(content = RebuildForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Started (or one is running here): back to /console/operations"),
        (status = 400, description = "Not a projection that can be rebuilt", content_type = HTML, body = String),
        pages::SignedOut,
        (status = 403, description = "Without this session's CSRF token", content_type = HTML, body = String),
        crate::http::answers::WriteAnswers,
    ))]
async fn rebuild(State(console): State<Arc<Console>>, session: Session, form: Fields) -> Response {
    if !session.checks(form.get("csrf")) {
        return csrf_refused(&session, Tab::Operations);
    }
    let rt = console.app.rt.clone();
    let asked: Vec<&str> = form.all("projection").collect();
    let chosen: Vec<&'static str> = match runtime::runner::rebuildable(&rt.projections, &asked) {
        Ok(chosen) => chosen.iter().map(|p| p.name()).collect(),
        Err(refused) => {
            return pages::problem(
                StatusCode::BAD_REQUEST,
                session.frame(Tab::Operations),
                "Rebuild",
                &refused,
            )
        }
    };
    let what = format!("rebuild {}", chosen.join(", "));
    console.jobs.rebuild.start(
        what,
        format!("console:{}", session.subject()),
        move |report| async move {
            let projections = runtime::runner::rebuildable(&rt.projections, &chosen)?;
            let progress = move |done, total| report(done, total);
            runtime::runner::rebuild(&rt.tx_pool, &projections, &progress)
                .await
                .map(|n| format!("rebuilt from {n} events and swapped in"))
                .map_err(|e| format!("the rebuild failed: {e}"))
        },
    );
    Redirect::to("/console/operations").into_response()
}

#[utoipa::path(get, path = "/console/operations/progress", tag = "console",
    summary = "The running rebuild's progress (an HTML fragment the page polls)",
    responses(
        (status = 200, description = "The fragment", content_type = HTML, body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn rebuild_progress(State(console): State<Arc<Console>>, _: Session) -> Response {
    pages::fragment(rebuild_fragment(&console))
}

#[utoipa::path(get, path = "/console/operations/lag", tag = "console",
    summary = "The lag chart (an HTML fragment the page polls)",
    responses(
        (status = 200, description = "The fragment", content_type = HTML, body = String),
        pages::SignedOut,
        crate::http::answers::ReadAnswers,
    ))]
async fn lag_chart(State(console): State<Arc<Console>>, _: Session) -> Response {
    pages::fragment(chart(&console.lags.snapshot()))
}

/// A retry's form, as the document shows it.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"csrf": "2fde37b68a9287c6f4b81b65cd97d838", "id": 7}))]
#[allow(dead_code)] // described, never built: the handler reads the fields itself
struct RetryForm {
    csrf: String,
    /// The mail's id.
    id: i64,
}

#[utoipa::path(post, path = "/console/mail/retry", tag = "console",
    summary = "Queue a failed mail again with a fresh count of attempts (the CLI's mail retry)",
    request_body(content = RetryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Queued again: to /console/operations?retried=ID"),
        (status = 400, description = "Not a failed mail", content_type = HTML, body = String),
        pages::SignedOut,
        (status = 403, description = "Without this session's CSRF token", content_type = HTML, body = String),
        crate::http::answers::WriteAnswers,
    ))]
async fn retry_mail(
    State(console): State<Arc<Console>>,
    session: Session,
    form: Fields,
) -> Response {
    if !session.checks(form.get("csrf")) {
        return csrf_refused(&session, Tab::Operations);
    }
    let not_failed = |id: &str| {
        pages::problem(
            StatusCode::BAD_REQUEST,
            session.frame(Tab::Operations),
            "Retry",
            &format!("Mail {id} is not a failed mail."),
        )
    };
    let raw = form.get("id").unwrap_or_default();
    let Ok(id) = raw.parse::<i64>() else {
        return not_failed(raw);
    };
    match runtime::mailer::retry(&console.app.rt.pool, id).await {
        Ok(true) => Redirect::to(&format!("/console/operations?retried={id}")).into_response(),
        Ok(false) => not_failed(&id.to_string()),
        Err(e) => crate::http::ApiError::from(e).into_response(),
    }
}
