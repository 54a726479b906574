//! Per-member write limits and login limits (per client address, per name), shared by every
//! server process on the database. Keys are opaque: a member id, or a keyed hash of an
//! address or a name (never the address or the name).
//!
//! A generic cell rate algorithm: each write moves the member's theoretical arrival time
//! (`tat`) on by `60 s / limit`; a write is refused while that would put it more than a minute
//! ahead. So a member may make `limit` writes at once, and then one every `60 s / limit`:
//! never more than `limit` (+1 at the edge) in any minute. The state lives in an unlogged
//! table: one small write that costs no WAL flush, lost (every member starts afresh) on a crash.

use sqlx::PgPool;

use crate::http::ApiError;

pub struct Limits {
    pool: PgPool,
    /// Writes per minute; 0: no limit.
    per_minute: u32,
    campus_per_minute: u32,
    login_per_address: u32,
    login_per_name: u32,
}

const WINDOW_SECS: f64 = 60.0;

/// Verification mails one user may ask for in a minute (to different addresses).
pub const VERIFICATION_MAILS_PER_USER: u32 = 3;

impl Limits {
    pub fn new(pool: PgPool, config: &crate::Config) -> Self {
        Self {
            pool,
            per_minute: config.write_limit,
            campus_per_minute: config.campus_write_limit,
            login_per_address: config.login_limit_address,
            login_per_name: config.login_limit_name,
        }
    }

    /// 429 with `Retry-After` when `member` has used up their writes for now.
    pub async fn check_write(&self, member_id: i64) -> Result<(), ApiError> {
        self.check(
            &format!("orchestra-member:{member_id}"),
            self.per_minute,
            "Too many changes",
        )
        .await
    }

    /// 429 with `Retry-After` when campus user `subject` has used up their writes for now
    /// (every write they send counts, refused or not: a flood is a flood).
    pub async fn check_campus_write(&self, subject: &str) -> Result<(), ApiError> {
        self.check(subject, self.campus_per_minute, "Too many changes")
            .await
    }

    /// 429 with `Retry-After` when logins from the request's client address, or for `name`
    /// (in `scope`: which login it is), come too often. Keyed by keyed hashes of both.
    pub async fn check_login(
        &self,
        keys: &crate::personal::KeyRing,
        request: &axum::http::Extensions,
        scope: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let address = request
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|peer| peer.0.ip().to_string())
            .unwrap_or_default();
        let address = crate::personal::hex(keys.blind("login-address", &address));
        let name = crate::personal::hex(keys.blind(scope, name.trim()));
        self.check(
            &format!("login-address:{address}"),
            self.login_per_address,
            "Too many login attempts",
        )
        .await?;
        self.check(
            &format!("login-name:{name}"),
            self.login_per_name,
            "Too many login attempts",
        )
        .await
    }

    /// 429 with `Retry-After` when a verification mail went to this address less than a
    /// minute ago (keyed by a keyed hash of the address), or `user` asked for more than
    /// [`VERIFICATION_MAILS_PER_USER`] this minute (one account must not mail-bomb many
    /// addresses).
    pub async fn check_verification_mail(
        &self,
        keys: &crate::personal::KeyRing,
        user: &str,
        email: &str,
    ) -> Result<(), ApiError> {
        self.check(
            &format!("verification-user:{user}"),
            VERIFICATION_MAILS_PER_USER,
            "Too many verification mails",
        )
        .await?;
        let key = crate::personal::hex(keys.blind("verification-mail", &mailbox_of(email)));
        self.check(
            &format!("verification-mail:{key}"),
            1,
            "A code was mailed to this address less than a minute ago",
        )
        .await
    }

    async fn check(&self, key: &str, per_minute: u32, what: &str) -> Result<(), ApiError> {
        if per_minute == 0 {
            return Ok(());
        }
        let step = WINDOW_SECS / per_minute as f64;
        let allowed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO write_limits AS w (key, tat) VALUES ($1, now() + make_interval(secs => $2)) \
             ON CONFLICT (key) DO UPDATE SET tat = greatest(w.tat, now()) + make_interval(secs => $2) \
             WHERE greatest(w.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $3) \
             RETURNING 1",
        )
        .bind(key)
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
        .bind(key)
        .bind(step)
        .bind(WINDOW_SECS)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(1.0);
        Err(ApiError::RetryAfter(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!("{what}: at most {per_minute} a minute. Please try again later."),
            wait.ceil().max(1.0) as u64,
        ))
    }
}

/// The mailbox an address reaches, as far as limits go: lower case, without a `+tag` (most
/// providers deliver `a+1@x.org` and `a+2@x.org` to one box).
fn mailbox_of(email: &str) -> String {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) => {
            let local = local.split('+').next().unwrap_or(local);
            format!("{local}@{domain}")
        }
        None => email,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_and_case_reach_one_mailbox() {
        assert_eq!(super::mailbox_of("A.B+x1@Mail.org"), "a.b@mail.org");
        assert_eq!(super::mailbox_of("a.b@mail.org"), "a.b@mail.org");
    }
}
