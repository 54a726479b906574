//! Health, readiness and Prometheus metrics. Counters live in one registry per process
//! (requests by route and status, latency histograms, command outcomes); gauges (projection
//! positions and lag, the mail outbox, the database pools) are read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::App;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    commands: BTreeMap<(&'static str, &'static str), u64>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// Count a command's outcome (`committed`, `rejected`, `busy`, ...) for `aggregate`.
pub fn command(aggregate: &'static str, outcome: &'static str) {
    *REGISTRY
        .lock()
        .unwrap()
        .commands
        .entry((aggregate, outcome))
        .or_default() += 1;
}

fn request(route: &str, method: &str, status: u16, took: Duration) {
    let mut r = REGISTRY.lock().unwrap();
    *r.requests
        .entry((route.to_string(), method.to_string(), status))
        .or_default() += 1;
    let h = r.latency.entry(route.to_string()).or_default();
    let secs = took.as_secs_f64();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if secs <= *bound {
            h.counts[i] += 1;
        }
    }
    h.sum += secs;
    h.count += 1;
}

/// The route template a request matched, passed out on its response for [`track`].
#[derive(Clone)]
struct Route(String);

/// Route middleware (inside the router, where the match is known): hands the route template
/// to [`track`] on the response.
pub async fn mark_route(request_in: Request, next: Next) -> Response {
    let route = request_in
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut response = next.run(request_in).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Middleware around everything: one count and one latency sample per request, by route
/// template (never by the raw path: ids would make the label set unbounded; requests that
/// matched no route count as `unmatched`).
pub async fn track(request_in: Request, next: Next) -> Response {
    // Any method a client invents counts as `other`: labels stay a fixed set.
    let method = match *request_in.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request_in).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_string();
    request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `/healthz`, `/readyz` and, unless `with_metrics` is false, `/metrics`.
pub fn routes(with_metrics: bool) -> OpenApiRouter<Arc<App>> {
    let router = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz));
    if with_metrics {
        router.routes(routes!(metrics))
    } else {
        router
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "The process is up",
    responses((status = 200, description = "Up", body = crate::http::schema::Health)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Events past a checkpoint, counted up to `cap` (an index range scan, never the whole log).
const LAG: &str = "SELECT c.name, c.transaction_id, c.position, \
     (SELECT count(*) FROM (SELECT 1 FROM events e \
        WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position) LIMIT $2) l) \
     FROM projection_checkpoints c WHERE c.name = ANY($1) ORDER BY c.name";

/// Health and metrics use a pool of their own (`db::probe_pool`: two connections, a wait for
/// one cut off after 0.5 s, each statement after 0.7 s), so a locked table or a crowd of
/// scrapes never takes the connections requests need, and every probe ends within about a
/// second and a half. The queries run on tasks of their own and are never cancelled half-way
/// (a client that hangs up, a timeout): a pool this small must get every connection back.
async fn lags(app: &Arc<App>, cap: i64) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    let app = app.clone();
    tokio::spawn(async move {
        let names: Vec<&str> = app.projections.iter().map(|p| p.name()).collect();
        sqlx::query_as(LAG)
            .bind(&names)
            .bind(cap)
            .fetch_all(&app.probe_pool)
            .await
    })
    .await
    .unwrap_or(Err(sqlx::Error::PoolClosed))
}

async fn outbox(app: &Arc<App>) -> Result<(i64, Option<f64>), sqlx::Error> {
    let app = app.clone();
    tokio::spawn(async move {
        sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 \
             FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&app.probe_pool)
        .await
    })
    .await
    .unwrap_or(Err(sqlx::Error::PoolClosed))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "The database answers and every read model is within a bounded lag",
    responses(
        (status = 200, description = "Ready", body = crate::http::schema::Readiness, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready, with the reason", body = crate::http::schema::Readiness),
    ))]
/// Ready: the database answers within 2 s and no read model is more than
/// `ENSEMBLE_READY_MAX_LAG` events behind. 503 with the reason otherwise.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let max = i64::from(app.config.ready_max_lag);
    let not_ready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response()
    };
    match lags(&app, max + 1).await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready("the database is unavailable or did not answer in time".into())
        }
        Ok(rows) => {
            if let Some((name, _, _, lag)) = rows.iter().find(|r| r.3 > max) {
                return not_ready(format!(
                    "read model {name} is {lag}{} events behind the log (at most {max} allowed)",
                    if *lag > max { "+" } else { "" }
                ));
            }
            Json(json!({ "status": "ready" })).into_response()
        }
    }
}

/// Whether a request on the public listener may read `/metrics`: only from this machine
/// (a loopback peer) and not relayed by a proxy (no forwarding header), since the metrics
/// tell a stranger how the service is used and attacked (failed logins, say).
fn from_this_machine(headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions) -> bool {
    let local = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|peer| peer.0.ip().is_loopback());
    let relayed = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    local && !relayed
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics: on the public listener to this machine only (loopback, not through a proxy); on ENSEMBLE_ADMIN_LISTEN instead when that is set",
    responses(
        (status = 200, description = "The Prometheus text format", content_type = "text/plain"),
        (status = 404, description = "Asked from another machine or through a proxy", body = crate::http::schema::NotFound),
    ))]
async fn metrics(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    // Without an admin listener this is the public one.
    if app.config.admin_listen.is_none() && !from_this_machine(&headers, &extensions) {
        return crate::http::ApiError::not_found().into_response();
    }
    let mut out = String::new();
    {
        let r = REGISTRY.lock().unwrap();
        out.push_str("# HELP ensemble_http_requests_total Requests answered, by route template, method and status.\n");
        out.push_str("# TYPE ensemble_http_requests_total counter\n");
        for ((route, method, status), n) in &r.requests {
            let _ = writeln!(
                out,
                "ensemble_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP ensemble_http_request_duration_seconds Time to answer, by route template.\n",
        );
        out.push_str("# TYPE ensemble_http_request_duration_seconds histogram\n");
        for (route, h) in &r.latency {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ensemble_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ensemble_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ensemble_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ensemble_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP ensemble_commands_total Commands by aggregate type and outcome.\n");
        out.push_str("# TYPE ensemble_commands_total counter\n");
        for ((aggregate, outcome), n) in &r.commands {
            let _ = writeln!(
                out,
                "ensemble_commands_total{{aggregate=\"{aggregate}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP ensemble_db_pool_connections Database connections by pool and state.\n");
    out.push_str("# TYPE ensemble_db_pool_connections gauge\n");
    for (name, pool) in [
        ("statements", &app.pool),
        ("transactions", &app.tx_pool),
        ("probes", &app.probe_pool),
    ] {
        let idle = pool.num_idle() as u32;
        let size = pool.size();
        let _ = writeln!(
            out,
            "ensemble_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {idle}"
        );
        let _ = writeln!(
            out,
            "ensemble_db_pool_connections{{pool=\"{name}\",state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
    }
    // Read at scrape time; a database that does not answer leaves them out (and says so).
    let (lag_rows, outbox_row) = tokio::join!(lags(&app, 1_000_000), outbox(&app));
    match lag_rows {
        Ok(rows) => {
            out.push_str("# HELP ensemble_projection_position The last log position a read model has applied.\n");
            out.push_str("# TYPE ensemble_projection_position gauge\n");
            for (name, _, position, _) in &rows {
                let _ = writeln!(
                    out,
                    "ensemble_projection_position{{projection=\"{name}\"}} {position}"
                );
            }
            out.push_str("# HELP ensemble_projection_lag_events Events committed past a read model's checkpoint (counted up to 1e6).\n");
            out.push_str("# TYPE ensemble_projection_lag_events gauge\n");
            for (name, _, _, lag) in &rows {
                let _ = writeln!(
                    out,
                    "ensemble_projection_lag_events{{projection=\"{name}\"}} {lag}"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: projections unavailable"),
    }
    match outbox_row {
        Ok((pending, oldest)) => {
            out.push_str("# HELP ensemble_mail_outbox_pending Mails not sent yet (not counting those set aside as failed).\n");
            out.push_str("# TYPE ensemble_mail_outbox_pending gauge\n");
            let _ = writeln!(out, "ensemble_mail_outbox_pending {pending}");
            out.push_str("# HELP ensemble_mail_outbox_oldest_pending_seconds Age of the oldest mail not sent yet.\n");
            out.push_str("# TYPE ensemble_mail_outbox_oldest_pending_seconds gauge\n");
            let _ = writeln!(
                out,
                "ensemble_mail_outbox_oldest_pending_seconds {}",
                oldest.unwrap_or(0.0)
            );
        }
        Err(e) => tracing::warn!(error = %e, "metrics: mail outbox unavailable"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
