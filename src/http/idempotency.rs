//! Safe retries. A write (POST, PUT, PATCH, DELETE) with an `Idempotency-Key` header runs
//! once per caller and key: the same key with the same request within 24 h gets the first
//! answer again (with `Idempotent-Replayed: true`) without running again; with another request
//! it is a 422. Keys live in the database, so they hold across restarts and processes; the
//! first request claims the key with one insert, so two racing requests run once (the second
//! waits for the first's answer).
//!
//! What is kept, and for whom (nothing a stranger can make the server store):
//! - only on a route that exists (this is a route layer: unknown paths never reach it), and
//!   never on the routes that issue credentials (a login's answer is a token);
//! - only for a caller whose token verifies (signature, audience, expiry): the caller is who
//!   the token speaks for (its audience and claims), so one user's keys never answer
//!   another's. Without a verified token the header is ignored;
//! - only decisions: 2xx, and the refusals 400, 409, 410 and 422. A 401, 403 or 404 (who may
//!   do what), a 429 or a 5xx (nothing was done, or the client must check) and any other
//!   answer release the key, so a retry runs again;
//! - at most `ENSEMBLE_RETRY_KEYS_PER_CALLER` answers per caller (1,000): each new claim drops that caller's
//!   oldest answers beyond it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{ApiError, BodyTimeout, MAX_BODY_BYTES};
use runtime::Runtime;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Writes whose answer is a credential: never kept under a key, whatever headers come with
/// them. Every route that issues a token belongs here.
const CREDENTIAL_PATHS: &[&str] = &["/account/login", "/adminLogIn", "/login", "/userLogin"];
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The audiences whose tokens name a caller (`src/orchestra`, `src/campus`).
const AUDIENCES: &[&str] = &["orchestra", "campus"];

fn digest(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an answer with this status is kept for retries.
fn kept(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status,
            StatusCode::BAD_REQUEST
                | StatusCode::CONFLICT
                | StatusCode::GONE
                | StatusCode::UNPROCESSABLE_ENTITY
        )
}

/// Who a request's verified token speaks for.
struct Caller {
    /// The digest the keys are scoped to (the token's audience and claims).
    scope: String,
    /// The caller's opaque subject, as personal keys name it (`orchestra-member:17`,
    /// `campus-user:7`, `campus-superuser:<id>`: the audience, the kind of caller, `member`
    /// where a token has no kind, and the id): their erasure drops their answers.
    subject: String,
}

/// Marks an answer that names others than its caller (a manager's decision names the
/// applier): an erasure of anyone drops it from the retry cache. Handlers insert it in their
/// response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct NamesOthers;

/// `response`, marked as naming others than its caller ([`NamesOthers`]).
pub fn naming_others(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(NamesOthers);
    response
}

fn caller(app: &Runtime, request: &Request) -> Option<Caller> {
    let value = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("jwt") || scheme.eq_ignore_ascii_case("bearer")) {
        return None;
    }
    let (audience, claims) = app.jwt.verified_claims(AUDIENCES, token.trim())?;
    let text = |k: &str| match claims.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(v @ serde_json::Value::Number(_)) => Some(v.to_string()),
        _ => None,
    };
    let subject = format!(
        "{audience}-{}:{}",
        text("kind").unwrap_or_else(|| "member".into()),
        text("sub")?
    );
    let scope = digest(&[serde_json::json!([audience, claims]).to_string().as_bytes()]);
    Some(Caller { scope, subject })
}

/// Whether the caller of a request is still admitted by its route's own checks (a binding
/// undone, an account deleted or disabled since the answer was kept): asked before a kept
/// answer is replayed, so that a revoked token gets the route's refusal, not the answer. Given
/// by the top floor, which knows the contexts.
pub type Admits = Arc<
    dyn Fn(
            axum::http::request::Parts,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Response>> + Send>>
        + Send
        + Sync,
>;

/// What the retry layer runs on.
#[derive(Clone)]
pub struct Retries {
    pub app: Arc<Runtime>,
    pub admits: Admits,
}

pub async fn idempotency(
    State(Retries { app, admits }): State<Retries>,
    request: Request,
    next: Next,
) -> Response {
    let write = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !write || !request.headers().contains_key(&IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    let issues_credentials = CREDENTIAL_PATHS.contains(&request.uri().path().trim_end_matches('/'));
    let Some(caller) = caller(&app, &request).filter(|_| !issues_credentials) else {
        return next.run(request).await;
    };
    let key = request
        .headers()
        .get(&IDEMPOTENCY_KEY)
        .cloned()
        .expect("checked above");
    match run(app, admits, caller, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

/// Claims a request makes before it gives up on duplicates that keep being released.
const MAX_CLAIMS: usize = 32;

async fn run(
    app: Arc<Runtime>,
    admits: Admits,
    caller: Caller,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters.")
                .into_response()
        })?
        .to_string();
    let (parts, body) = request.into_parts();
    let deadline = parts
        .extensions
        .get::<BodyTimeout>()
        .map_or(Duration::from_secs(30), |t| t.0);
    let bytes = tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            ApiError::msg(
                StatusCode::REQUEST_TIMEOUT,
                "The request body took too long.",
            )
            .into_response()
        })?
        .map_err(|_| {
            ApiError::msg(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {MAX_BODY_BYTES} bytes."),
            )
            .into_response()
        })?;
    let request_hash = digest(&[
        parts.method.as_str().as_bytes(),
        parts.uri.path().trim_end_matches('/').as_bytes(),
        parts.uri.query().unwrap_or("").as_bytes(),
        &bytes,
    ]);
    // Claim, run and keep on a task of its own: a client that hangs up cuts neither the claim
    // from its run nor the run from the answer kept for the retry.
    let request = Request::from_parts(parts, Body::from(bytes));
    let task = tokio::spawn(async move {
        let mut admitted = false;
        // The first request's answer released (not kept) while this one waited: claim again
        // and run it. Duplicates that waited together run one at a time, so one of k may lose
        // the claim k - 1 times (5 was too few for ten at once under load: a 503 in CI); past
        // this many simultaneous duplicates the last hear "try again".
        for _ in 0..MAX_CLAIMS {
            match claim(&app, &caller, &key, &request_hash).await {
                Ok(true) => {
                    let response = next.run(request).await;
                    return keep(&app, &caller, &key, response).await;
                }
                Ok(false) => {
                    if !admitted {
                        if let Err(refused) = admits(parts_of(&request)).await {
                            return refused;
                        }
                        admitted = true;
                    }
                    if let Some(answer) = replay(&app, &caller.scope, &key, &request_hash).await {
                        return answer;
                    }
                }
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        ApiError::busy("The first request with this Idempotency-Key failed; please try again.")
            .into_response()
    });
    Ok(task
        .await
        .unwrap_or_else(|_| ApiError::internal("the request task failed").into_response()))
}

/// What the route's checks read of a request (its method, path and headers), for [`Admits`].
fn parts_of(request: &Request) -> axum::http::request::Parts {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy.into_parts().0
}

/// Claim `key` for `caller`'s request: false when it is taken (by a request that ran, or runs).
/// In the same statement, the caller's answers beyond the newest
/// `ENSEMBLE_RETRY_KEYS_PER_CALLER - 1` go (claims still running are never dropped).
async fn claim(
    app: &Runtime,
    caller: &Caller,
    key: &str,
    request_hash: &str,
) -> Result<bool, sqlx::Error> {
    // A claim outlives the request it guards; an abandoned one (a dead process) is taken over.
    let hold = app.config.http.request_timeout + Duration::from_secs(5);
    let claimed: Option<bool> = sqlx::query_scalar(
        "WITH claim AS ( \
             INSERT INTO idempotency_keys (scope, key, request_hash, locked_until, erasures, subject) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4), (SELECT generation FROM erasures), $6) \
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, \
                 locked_until = excluded.locked_until, status = NULL, content_type = NULL, \
                 response_body = NULL, created_at = now(), erasures = excluded.erasures, \
                 subject = excluded.subject \
             WHERE idempotency_keys.created_at < now() - interval '24 hours' \
                OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until < now()) \
             RETURNING true \
         ), evicted AS ( \
             DELETE FROM idempotency_keys WHERE scope = $1 AND key <> $2 AND status IS NOT NULL \
               AND EXISTS (SELECT FROM claim) \
               AND created_at <= (SELECT created_at FROM idempotency_keys WHERE scope = $1 \
                                  ORDER BY created_at DESC OFFSET $5 LIMIT 1) \
         ) \
         SELECT true FROM claim",
    )
    .bind(&caller.scope)
    .bind(key)
    .bind(request_hash)
    .bind(hold.as_secs_f64())
    .bind(i64::from(app.config.retry_keys_per_caller) - 1)
    .bind(&caller.subject)
    .fetch_optional(&app.pool)
    .await?;
    Ok(claimed.is_some())
}

/// Store the answer (or release the key for what is not kept) and hand it on.
async fn keep(app: &Runtime, caller: &Caller, key: &str, response: Response) -> Response {
    let scope = caller.scope.as_str();
    if !kept(response.status()) {
        let _ = sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .execute(&app.pool)
            .await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal("response body unreadable").into_response();
    };
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let names_others = parts.extensions.get::<NamesOthers>().is_some();
    // An answer that names others is kept only if no erasure committed since the claim (it
    // may name the erased person); one about its caller alone, only if the caller was not
    // erased. Otherwise the claim goes, and a retry runs again.
    if let Err(e) = sqlx::query(
        "WITH kept AS ( \
             UPDATE idempotency_keys SET status = $3, content_type = $4, response_body = $5, \
                 names_others = $6 \
             WHERE scope = $1 AND key = $2 \
               AND CASE WHEN $6 THEN erasures = (SELECT generation FROM erasures) \
                        ELSE NOT EXISTS (SELECT FROM personal_keys k \
                                         WHERE k.subject = idempotency_keys.subject AND k.key IS NULL) \
                   END \
             RETURNING 1 \
         ) \
         DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT FROM kept)",
    )
    .bind(scope)
    .bind(key)
    .bind(parts.status.as_u16() as i16)
    .bind(&content_type)
    .bind(bytes.as_ref())
    .bind(names_others)
    .execute(&app.pool)
    .await
    {
        // The answer still goes out; a retry with this key waits for the claim to lapse.
        tracing::warn!(error = %e, "could not keep an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A kept key: the request's hash, and the answer once there is one (status, content type,
/// body).
type Kept = (String, Option<i16>, Option<String>, Option<Vec<u8>>);

/// The key is taken: the first answer, once there is one; 422 for another request.
/// The kept answer for a key claimed by another request (waiting for it to be kept); None
/// when that request's answer was released instead (it was not a decision).
async fn replay(app: &Runtime, scope: &str, key: &str, request_hash: &str) -> Option<Response> {
    // Short of the request's own deadline, so that the 409 is what the client hears.
    let give_up = tokio::time::Instant::now()
        + app
            .config
            .http
            .request_timeout
            .saturating_sub(Duration::from_secs(2))
            .max(Duration::from_secs(1));
    loop {
        let row: Result<Option<Kept>, _> = sqlx::query_as(
            "SELECT request_hash, status, content_type, response_body FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&app.pool)
        .await;
        match row {
            Err(e) => return Some(ApiError::from(e).into_response()),
            // Released meanwhile (the first answer was not kept).
            Ok(None) => return None,
            Ok(Some((hash, _, _, _))) if hash != request_hash => {
                return Some(
                    ApiError::msg(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "This Idempotency-Key was already used with another request.",
                    )
                    .into_response(),
                )
            }
            Ok(Some((_, Some(status), content_type, body))) => {
                let mut response = Response::new(Body::from(body.unwrap_or_default()));
                *response.status_mut() =
                    StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
                if let Some(v) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, v);
                }
                response
                    .headers_mut()
                    .insert(REPLAYED, HeaderValue::from_static("true"));
                return Some(response);
            }
            Ok(Some(_)) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(Some(_)) => {
                return Some(
                    ApiError::msg(
                        StatusCode::CONFLICT,
                        "A request with this Idempotency-Key is still in progress.",
                    )
                    .into_response(),
                )
            }
        }
    }
}
