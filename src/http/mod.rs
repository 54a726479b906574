//! The REST surface: one router per bounded context, JSON everywhere, paths with or without
//! the trailing slash; served by hyper with timeouts and a connection limit.

pub mod answers;
mod auth;
pub mod docs;
mod error;
pub mod health;
pub mod idempotency;
mod input;
pub mod kept;
pub mod reads;
pub mod schema;
pub mod subscriptions;
mod timed_io;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{bearer_token, client_address, http_actor, MalformedAuthorization};
pub use error::{drf_shape, ApiError};
pub use idempotency::naming_others;
pub use input::{parse_date, parse_id, Body, BodyTimeout, Field, Segment, MAX_BODY_BYTES};

use runtime::Runtime;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Where the request-id middleware leaves a client's own, checked `x-request-id` for the
/// handlers. Whatever a client sends under this name is dropped.
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ensemble-client-request-id");

/// The latest moment a command of this request may start its append (a request extension):
/// the append then ends within its statement timeout and the read models get their wait, all
/// before the request's own deadline, so a 503 for a timeout never hides a later commit.
#[derive(Debug, Clone, Copy)]
pub struct AppendBy(pub tokio::time::Instant);

/// What the request-limits middleware needs.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    http: runtime::config::HttpLimits,
    /// From the request's start to its [`AppendBy`].
    append_window: Duration,
}

/// The services' routes, as the top floor assembles them (each with its state, its fallback
/// answers), with the shared plumbing around
/// them: request ids, limits and deadlines, safe retries, tracing, metrics, and the JSON
/// answers for unknown paths and methods.
pub fn router(
    app: Arc<Runtime>,
    (api, document): (Router, utoipa::openapi::OpenApi),
    admits: idempotency::Admits,
) -> Router {
    let waits = app.config.waits;
    let limits = Bounds {
        http: app.config.http,
        append_window: app
            .config
            .http
            .request_timeout
            .saturating_sub(waits.turn + waits.projection + Duration::from_secs(1)),
    };
    api.layer(axum::Extension(docs::Served(Arc::new(
        document.to_json().expect("the document is JSON"),
    ))))
    // Safe retries only on routes that exist (a route layer: unknown paths never reach it).
    .route_layer(axum::middleware::from_fn_with_state(
        idempotency::Retries {
            app: app.clone(),
            admits,
        },
        idempotency::idempotency,
    ))
    .route_layer(axum::middleware::from_fn(health::mark_route))
    .layer(axum::middleware::from_fn_with_state(limits, request_limits))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    // One span per request (method, path, request id); one line per response with its
    // status and latency. Headers are not logged: they carry tokens.
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::INFO))
            // A 5xx the service meant (502 for a code WeChat refused, 503 busy) is a warning;
            // an unexpected failure is logged as an error where it happens (ApiError::Internal).
            .on_failure(DefaultOnFailure::new().level(Level::WARN)),
    )
    .layer(axum::middleware::from_fn(request_ids))
    .layer(axum::middleware::from_fn(health::track))
}

/// Our own request id on every request (the `x-request-id` of the response and the
/// `request_id` of its events). A client's own id is kept beside it only when it is short and
/// well-formed: a forged or oversized one never reaches the audit trail.
async fn request_ids(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    headers.remove(CLIENT_REQUEST_ID);
    if let Some(theirs) = headers.remove(REQUEST_ID) {
        if theirs.to_str().is_ok_and(well_formed_request_id) {
            headers.insert(CLIENT_REQUEST_ID, theirs);
        }
    }
    let ours = uuid::Uuid::new_v4().to_string();
    headers.insert(
        REQUEST_ID,
        HeaderValue::from_str(&ours).expect("a uuid is a header value"),
    );
    next.run(request).await
}

/// At most 64 characters of letters, digits and `-_.:`.
pub fn well_formed_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The whole-request deadline, the body deadline for the extractors, and the append deadline
/// for commands.
async fn request_limits(
    State(bounds): State<Bounds>,
    mut request: Request,
    next: Next,
) -> Response {
    let limits = bounds.http;
    let started = tokio::time::Instant::now();
    request
        .extensions_mut()
        .insert(BodyTimeout(limits.body_timeout));
    request
        .extensions_mut()
        .insert(AppendBy(started + bounds.append_window));
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        // Commands run on tasks of their own: giving up here never cuts one in half. A
        // command starts its append by `AppendBy` at the latest, and the append ends within
        // its statement timeout, so no commit follows this answer (short of a stalled disk
        // delaying a commit past it, which the message allows for).
        Err(_) => ApiError::busy(
            "The request took too long. A change may still have been made: check before trying again.",
        )
        .into_response(),
    }
}

pub fn request_id(headers: &HeaderMap) -> String {
    header_text(headers, &REQUEST_ID).unwrap_or_default()
}

pub fn client_request_id(headers: &HeaderMap) -> Option<String> {
    header_text(headers, &CLIENT_REQUEST_ID)
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A request extension: true once the server has begun to stop (long-lived answers end).
#[derive(Clone)]
pub struct Stopping(pub tokio::sync::watch::Receiver<bool>);

/// Serve until `shutdown` completes, then finish the requests in flight.
pub async fn serve(
    app: Arc<Runtime>,
    routes: (Router, utoipa::openapi::OpenApi),
    admits: idempotency::Admits,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = app.config.http;
    let max_connections = connection_cap(limits.max_connections, app.config.pool_size);
    // Set when the server stops: every connection finishes its request in flight and closes,
    // and streams (subscriptions) end.
    let stopping = tokio::sync::watch::Sender::new(false);
    let service = NormalizePathLayer::trim_trailing_slash()
        .layer(router(app, routes, admits).layer(axum::Extension(Stopping(stopping.subscribe()))));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Woken when nearly every slot is taken: connections that have not sent a byte yet then
    // get a second more (real clients send at once).
    // (A watch, not a Notify: a connection whose task has not run yet still sees it.)
    let pressure = tokio::sync::watch::Sender::new(0u64);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut accept_errors = RateLimitedLog::default();
    tokio::pin!(shutdown);
    loop {
        // A slot first, then a connection: at the limit, clients wait in the backlog instead
        // of taking file descriptors.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (mut stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning, and say so now and
                    // then, not ten times a second.
                    accept_errors.warn(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let pressed_now = slots.available_permits() * 10 < max_connections;
        if pressed_now {
            // Connections still waiting for their first byte get a second from now.
            pressure.send_modify(|n| *n += 1);
        }
        let service = service.clone();
        let http = http.clone();
        let mut stop = stopping.subscribe();
        let mut pressure = pressure.subscribe();
        let header_timeout = limits.header_timeout;
        let write_timeout = limits.write_timeout;
        tokio::spawn(async move {
            // Until the first request's headers are in: the header timeout, or a second once
            // the slots run short (so a crowd of connections that send nothing, or a byte
            // and then nothing, is shed quickly, also those that came first).
            let mut head = Vec::new();
            let headers_in = async {
                let limit = if pressed_now {
                    PRESSED_HEADER_TIMEOUT
                } else {
                    header_timeout
                };
                tokio::select! {
                    read = tokio::time::timeout(limit, read_head(&mut stream, &mut head)) => {
                        matches!(read, Ok(Ok(())))
                    }
                    _ = async {
                        let _ = pressure.changed().await;
                        tokio::time::sleep(PRESSED_HEADER_TIMEOUT).await;
                    } => false,
                    _ = stop.changed() => false,
                }
            };
            if !headers_in.await {
                drop(slot);
                return;
            }
            // Requests this connection has handed to the router: hyper closes a connection that
            // has not started on a request when told to shut down, so the first request (whose
            // head is read already) must be under way before that may be asked.
            let dispatched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = dispatched.clone();
            let service = tower::ServiceExt::map_request(
                service,
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                },
            );
            let hyper_service = TowerToHyperService::new(service);
            let io = timed_io::TimedIo::new(stream, write_timeout, head);
            let connection = http.serve_connection(TokioIo::new(io), hyper_service);
            tokio::pin!(connection);
            // Under pressure (a new connection while 90 % of the slots are taken) and when
            // the server stops, a connection finishes the request it is serving and closes:
            // an idle keep-alive connection closes at once, so clients that keep connections
            // open and idle cannot hold the slots.
            let mut closing = false;
            let mut close_once_started = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = pressure.changed(), if !closing && !close_once_started => {
                        close_once_started = true;
                    }
                    _ = stop.changed(), if !closing && !close_once_started => {
                        close_once_started = true;
                    }
                    // Checked right away and then every few milliseconds until the first
                    // request is under way.
                    _ = tokio::time::sleep(Duration::from_millis(5)), if close_once_started && !closing => {}
                }
                if close_once_started
                    && !closing
                    && dispatched.load(std::sync::atomic::Ordering::SeqCst) > 0
                {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    // In-flight requests finish, bounded by the whole-request timeout: every connection gives
    // its slot back when it ends.
    stopping.send_replace(true);
    let _ = tokio::time::timeout(
        limits.request_timeout + limits.header_timeout,
        slots.acquire_many(max_connections as u32),
    )
    .await;
    Ok(())
}

/// Read the start of a connection until the end of the first request's headers (a blank
/// line, whether its lines end in CRLF or a bare LF), or `HEAD_PEEK_MAX` bytes (hyper takes it from there), or the end of the stream.
async fn read_head(stream: &mut tokio::net::TcpStream, head: &mut Vec<u8>) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if head_ends(&head[from..]) || head.len() >= HEAD_PEEK_MAX {
            return Ok(());
        }
    }
}

/// Whether `bytes` hold the blank line that ends a request's head: CRLF CRLF, or a line ended
/// by a bare LF (which hyper accepts too, or refuses with a 400: either way it answers).
fn head_ends(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && bytes.get(i + 2) == Some(&b'\n')))
}

/// How much of a first request's head is read before hyper takes over.
const HEAD_PEEK_MAX: usize = 16 * 1024;

/// How long a connection whose first request's headers are not complete may stay once more
/// than 90 % of the slots are taken.
const PRESSED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Descriptors kept, beside the database pools and the WeChat connections, for everything
/// else: the LISTEN connection, the projector's own connection, SMTP, the listener, logs and
/// the like.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection cap: as configured, but never more than the open-files limit leaves once the
/// database pools and the rest have theirs (the soft limit is first raised to the hard one).
/// Clients beyond it wait in the listen backlog instead of taking descriptors the database
/// connections need.
fn connection_cap(configured: usize, pool_size: u32) -> usize {
    let Some(limit) = descriptor_limit() else {
        return configured.max(1);
    };
    let reserved =
        u64::from(pool_size) + u64::from(runtime::db::TX_POOL_SIZE) + RESERVED_DESCRIPTORS;
    let budget = limit.saturating_sub(reserved).max(1);
    if (configured as u64) > budget {
        tracing::warn!(
            configured,
            open_files_limit = limit,
            cap = budget,
            "ENSEMBLE_HTTP_MAX_CONNECTIONS is more than the open-files limit allows; capped"
        );
        return budget as usize;
    }
    configured.max(1)
}

/// The open-files limit of this process, after raising the soft limit to the hard one.
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// A warning at most every ten seconds, with the count of those left out in between.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, error: &std::io::Error) {
        if self
            .last
            .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, suppressed = self.suppressed, "accept failed");
        self.last = Some(std::time::Instant::now());
        self.suppressed = 0;
    }
}
