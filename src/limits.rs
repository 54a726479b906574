//! Per-member write limits, shared by every server process on the database.
//!
//! A generic cell rate algorithm: each write moves the member's theoretical arrival time
//! (`tat`) on by `60 s / limit`; a write is refused while that would put it more than a minute
//! ahead. So a member may make `limit` writes at once, and then one every `60 s / limit`:
//! never more than `limit` (+1 at the edge) in any minute. The state lives in an unlogged
//! table: one small write that costs no WAL flush, lost (every member starts afresh) on a crash.

use sqlx::PgPool;

use crate::http::ApiError;
use crate::orchestra::CurrentMember;

pub struct Limits {
    pool: PgPool,
    /// Writes per minute; 0: no limit.
    per_minute: u32,
}

const WINDOW_SECS: f64 = 60.0;

impl Limits {
    pub fn new(pool: PgPool, per_minute: u32) -> Self {
        Self { pool, per_minute }
    }

    /// 429 with `Retry-After` when `member` has used up their writes for now.
    pub async fn check_write(&self, member: &CurrentMember) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let key = format!("orchestra-member:{}", member.id);
        let step = WINDOW_SECS / self.per_minute as f64;
        let allowed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO write_limits AS w (key, tat) VALUES ($1, now() + make_interval(secs => $2)) \
             ON CONFLICT (key) DO UPDATE SET tat = greatest(w.tat, now()) + make_interval(secs => $2) \
             WHERE greatest(w.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $3) \
             RETURNING 1",
        )
        .bind(&key)
        .bind(step)
        .bind(WINDOW_SECS)
        .fetch_optional(&self.pool)
        .await?;
        if allowed.is_some() {
            return Ok(());
        }
        let wait: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM tat + make_interval(secs => $2) - now() - make_interval(secs => $3))::float8 \
             FROM write_limits WHERE key = $1",
        )
        .bind(&key)
        .bind(step)
        .bind(WINDOW_SECS)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(1.0);
        Err(ApiError::RetryAfter(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many changes: at most {} a minute. Please try again later.",
                self.per_minute
            ),
            wait.ceil().max(1.0) as u64,
        ))
    }
}
