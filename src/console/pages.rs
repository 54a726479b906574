//! The console's HTML: the frame every page shares, the login form, and the pieces several
//! pages use (a JSON value with its changes marked, a table of changes, a job's progress).
//! maud escapes every value it renders: a nickname `<script>` is text.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::diff::{self, Change};
use super::jobs::Progress;

/// The pages, as the menu lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    History,
    Record,
    Saw,
    Integrity,
    Operations,
}

const TABS: &[(Tab, &str, &str)] = &[
    (Tab::History, "/console/history", "History"),
    (Tab::Record, "/console/record", "Record"),
    (Tab::Saw, "/console/saw", "What they saw"),
    (Tab::Integrity, "/console/integrity", "Integrity"),
    (Tab::Operations, "/console/operations", "Operations"),
];

/// What the frame of a signed-in page shows: the menu with its page marked, who is signed in,
/// and the CSRF token of the logout form.
pub struct Frame {
    pub tab: Tab,
    pub subject: String,
    pub csrf: String,
}

/// A whole page.
pub fn page(title: &str, frame: Option<Frame>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Ensemble console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    span.brand { "Ensemble" small { " console" } }
                    @if let Some(frame) = frame {
                        nav {
                            @for (tab, href, label) in TABS {
                                a href=(href) class=[(*tab == frame.tab).then_some("active")] { (label) }
                            }
                        }
                        form.logout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            span.who title="signed in as" { (frame.subject) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// What every page of a session answers without one, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the session extractor answers it
pub enum SignedOut {
    /// No session (or an expired one, or a disabled superuser's): the login form (HTML).
    #[response(status = 401, content_type = "text/html")]
    LoginForm(String),
}

/// A problem, as pages show it.
pub fn alert(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}

/// The login form: all anyone without a session sees.
pub fn login(status: StatusCode, problem: Option<&str>) -> (StatusCode, Markup) {
    (
        status,
        page(
            "Log in",
            None,
            html! {
                section.login {
                    h1 { "Log in" }
                    p.hint { "With your campus superuser name and password (as for adminLogIn/)." }
                    @if let Some(problem) = problem {
                        p.error role="alert" { (problem) }
                    }
                    form method="post" action="/console/login" {
                        label { "Username" input name="username" autocomplete="username" required; }
                        label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { "Log in" }
                    }
                }
            },
        ),
    )
}

/// A page that says what went wrong, with `status`.
pub fn problem(status: StatusCode, frame: Frame, title: &str, text: &str) -> Response {
    (
        status,
        page(title, Some(frame), html! { h1 { (title) } (alert(text)) }),
    )
        .into_response()
}

/// `value` laid out as lines, those at or below a place in `changed` marked.
pub fn json(value: &Value, changed: &HashSet<&str>) -> Markup {
    let lines = diff::lines(value);
    html! {
        pre.json {
            @for line in &lines {
                @let marked = !changed.is_empty() && diff::is_marked(&line.pointer, changed);
                span class=(if marked { "line changed" } else { "line" }) data-pointer=(line.pointer) {
                    ("  ".repeat(line.depth)) (line.key) (line.text) "\n"
                }
            }
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// The changes between two values, one row each.
pub fn changes(changes: &[(String, Change)], before: &str, after: &str) -> Markup {
    html! {
        @if changes.is_empty() {
            p.quiet { "No field changed." }
        } @else {
            table.changes {
                thead { tr { th { "Field" } th { (before) } th { (after) } } }
                tbody {
                    @for (at, change) in changes {
                        @let (kind, old, new) = match change {
                            Change::Added(v) => ("added", String::new(), short(v)),
                            Change::Removed(v) => ("removed", short(v), String::new()),
                            Change::Changed(a, b) => ("changed", short(a), short(b)),
                        };
                        tr class=(kind) data-field=(at) {
                            td.field { code { (if at.is_empty() { "(the whole value)" } else { at.as_str() }) } }
                            td.before { code { (old) } }
                            td.after { code { (new) } }
                        }
                    }
                }
            }
        }
    }
}

/// A job's progress as a fragment the page polls while it runs (`data-poll`).
pub fn progress(id: &str, poll: &str, job: Option<&Progress>) -> Markup {
    let running = job.is_some_and(Progress::running);
    html! {
        div.job id=(id) data-poll=(poll) data-running=(running) {
            @match job {
                None => p.quiet { "Not run from this process since it started." },
                Some(job) => {
                    p {
                        strong { (job.what) } " started " (time(job.started)) " by " code { (job.by) }
                    }
                    @if running {
                        progress value=(job.done) max=(job.total.max(1)) {}
                        span.count { (job.done) " / " (job.total) }
                    } @else if let Some((ended, outcome)) = &job.ended {
                        @match outcome {
                            Ok(text) => p.ok.outcome { (text) " (" (time(*ended)) ")" },
                            Err(text) => p.error.outcome role="alert" { (text) " (" (time(*ended)) ")" },
                        }
                    }
                }
            }
        }
    }
}

pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A fragment (no frame) as a response.
pub fn fragment(markup: Markup) -> Response {
    markup.into_response()
}
