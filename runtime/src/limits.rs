//! Per-member write limits and login limits (attempts per client address; failures per name
//! from one address and per name from anywhere), shared by every server process on the
//! database. Keys are opaque: a member id, or a keyed hash of an address or a name (never the
//! address or the name).
//!
//! A generic cell rate algorithm: each write moves the member's theoretical arrival time
//! (`tat`) on by `60 s / limit`; a write is refused while that would put it more than a minute
//! ahead. So a member may make `limit` writes at once, and then one every `60 s / limit`:
//! never more than `limit` (+1 at the edge) in any minute. The state lives in an unlogged
//! table: one small write that costs no WAL flush, lost (every member starts afresh) on a crash.

use sqlx::PgPool;

/// A limit was reached: try again after `retry_after` seconds (HTTP answers 429 with
/// `Retry-After`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Limited {
    pub message: String,
    pub retry_after: u64,
}

/// What a check can fail with: a limit, or the database.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Limited(#[from] Limited),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Limits {
    pool: PgPool,
    /// Writes per minute; 0: no limit.
    per_minute: u32,
    campus_per_minute: u32,
    login_per_address: u32,
    login_failures_per_name_address: u32,
    login_failures_per_name: u32,
}

const WINDOW_SECS: f64 = 60.0;

/// Verification mails one user may ask for in a minute (to different addresses).
pub const VERIFICATION_MAILS_PER_USER: u32 = 3;

/// A login under way: what it was counted against ([`Limits::login_cleared`],
/// [`Limits::login_failed`]).
pub struct LoginAttempt {
    /// The name and this address, and the name alone (keyed hashes); None for logins that
    /// name nobody (the campus's, by WeChat account only).
    name: Option<(String, String)>,
    /// The name was past its ceiling when the attempt came: a failure now shuts this address
    /// out of the name for a whole minute.
    under_attack: bool,
}

impl Limits {
    pub fn new(pool: PgPool, config: &crate::config::Config) -> Self {
        Self {
            pool,
            per_minute: config.write_limit,
            campus_per_minute: config.campus_write_limit,
            login_per_address: config.login_limit_address,
            login_failures_per_name_address: config.login_limit_name_address,
            login_failures_per_name: config.login_limit_name,
        }
    }

    /// 429 with `Retry-After` when orchestra member `member_id` has used up their writes for
    /// now; in the same statement, the caller's own check `caller`, a query of one boolean
    /// about `$5` = `member_id` and `$6` = `binding` (ours, a constant): Ok(false) when their
    /// token no longer speaks for them, and nothing was counted (a revoked token never spends
    /// the member's writes). Without a limit, no statement: the append checks the caller.
    pub async fn check_write(
        &self,
        member_id: i64,
        caller: &'static str,
        binding: i64,
    ) -> Result<bool, LimitError> {
        if self.per_minute == 0 {
            return Ok(true);
        }
        let key = format!("orchestra-member:{member_id}");
        self.take_as(&key, self.per_minute, caller, &[member_id, binding])
            .await
    }

    /// 429 with `Retry-After` when campus user `subject` has used up their writes for now
    /// (every write they send counts, refused or not: a flood is a flood); in the same
    /// statement, the caller's own check: `caller`, a query of one boolean about `$5` = `id`
    /// (ours, a constant), says whether they may write at all. Ok(false): they may not, and
    /// nothing was counted.
    pub async fn check_campus_write(
        &self,
        subject: &str,
        caller: &'static str,
        id: i64,
    ) -> Result<bool, LimitError> {
        self.take_as(subject, self.campus_per_minute, caller, &[id])
            .await
    }

    /// One write against `key` if the caller's check `caller` holds: Ok(whether it held), or
    /// the limit.
    async fn take_as(
        &self,
        key: &str,
        per_minute: u32,
        caller: &'static str,
        args: &[i64],
    ) -> Result<bool, LimitError> {
        match self.take_if(key, per_minute, caller, args).await? {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(wait)) => Err(refused("Too many changes", per_minute, wait).into()),
        }
    }

    /// Before a login's credentials are looked at: 429 with `Retry-After` when the client
    /// address has made too many attempts (`ENSEMBLE_LOGIN_LIMIT_ADDRESS`, every attempt
    /// counts), when this address has failed too often for `name`
    /// (`ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS`), or when `name` is past its ceiling of failures
    /// from anywhere (`ENSEMBLE_LOGIN_LIMIT_NAME`) and this address has failed for it within
    /// the minute (or has another attempt for it under way). So strangers' failures never shut
    /// out an address that has not failed: the rightful owner's correct credentials are heard.
    ///
    /// Every attempt is counted as a failure from the start, in the same statement that checks
    /// the limit, so a burst of simultaneous attempts counts in full; the caller takes the
    /// count back with [`Limits::login_cleared`] when the credentials were right (or the
    /// attempt failed for another reason than them), and tells [`Limits::login_failed`]
    /// when they were wrong. Keyed by keyed hashes of the address and the name (in `scope`:
    /// which login it is), never the address or the name.
    pub async fn login_attempt(
        &self,
        keys: &crate::personal::KeyRing,
        client: Option<std::net::IpAddr>,
        scope: &str,
        name: Option<&str>,
    ) -> Result<LoginAttempt, LimitError> {
        let address = client.map(|ip| ip.to_string()).unwrap_or_default();
        let address = crate::personal::hex(keys.blind("login-address", &address));
        self.check(
            &format!("login-address:{address}"),
            self.login_per_address,
            "Too many login attempts",
        )
        .await?;
        let Some(name) = name else {
            return Ok(LoginAttempt {
                name: None,
                under_attack: false,
            });
        };
        let name = crate::personal::hex(keys.blind(scope, name.trim()));
        let pair = format!("login-failures:{name}:{address}");
        let name = format!("login-failures:{name}");
        let too_many = |wait: f64| Limited {
            message: "Too many failed login attempts. Please try again later.".into(),
            retry_after: wait.ceil().max(1.0) as u64,
        };
        let under_attack = self
            .peek(&name, self.login_failures_per_name)
            .await?
            .refused
            .is_some();
        let attempt = LoginAttempt {
            name: Some((pair.clone(), name.clone())),
            under_attack,
        };
        // Counted now; a refusal below keeps the count.
        let charged_before = match self
            .take(&pair, self.login_failures_per_name_address)
            .await?
        {
            Ok(before) => before,
            Err(wait) => return Err(too_many(wait).into()),
        };
        if let Err(e) = self.charge(&name, self.login_failures_per_name, 1).await {
            tracing::warn!(error = %e, "could not count a login attempt");
        }
        if under_attack && charged_before > 0.0 {
            return Err(too_many(charged_before).into());
        }
        Ok(attempt)
    }

    /// The credentials of `attempt` were right (or it failed for another reason than them):
    /// its count is taken back. Best effort: a failure to do so is logged.
    pub async fn login_cleared(&self, attempt: &LoginAttempt) {
        let Some((pair, name)) = &attempt.name else {
            return;
        };
        for (key, per_minute) in [
            (pair, self.login_failures_per_name_address),
            (name, self.login_failures_per_name),
        ] {
            if let Err(e) = self.refund(key, per_minute).await {
                tracing::warn!(error = %e, "could not take back a login attempt's count");
            }
        }
    }

    /// The credentials of `attempt` were wrong (it was counted as a failure already). Past the
    /// name's ceiling, that one failure uses up this address's failures for the name for a
    /// minute. Best effort: a failure to count is logged.
    pub async fn login_failed(&self, attempt: &LoginAttempt) {
        let (Some((pair, _)), true) = (&attempt.name, attempt.under_attack) else {
            return;
        };
        let per_pair = self.login_failures_per_name_address;
        if let Err(e) = self.charge(pair, per_pair, per_pair.max(1)).await {
            tracing::warn!(error = %e, "could not count a failed login");
        }
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
    ) -> Result<(), LimitError> {
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

    async fn check(&self, key: &str, per_minute: u32, what: &str) -> Result<(), LimitError> {
        match self.take(key, per_minute).await? {
            Ok(_) => Ok(()),
            Err(wait) => Err(refused(what, per_minute, wait).into()),
        }
    }

    /// Where a key stands, without counting anything.
    async fn peek(&self, key: &str, per_minute: u32) -> Result<Peek, LimitError> {
        if per_minute == 0 {
            return Ok(Peek::default());
        }
        let step = WINDOW_SECS / per_minute as f64;
        // Seconds until the key's moment has passed, and until one more would fit.
        let ahead: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM tat - now())::float8 FROM write_limits WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let ahead = ahead.unwrap_or(0.0);
        let over = ahead + step - WINDOW_SECS;
        Ok(Peek {
            refused: (over > 0.0).then_some(over),
        })
    }

    /// Count one against `key` if it fits: Ok(seconds by which the key was charged ahead
    /// before this), or Err(seconds until one more would fit).
    async fn take(&self, key: &str, per_minute: u32) -> Result<Result<f64, f64>, LimitError> {
        if per_minute == 0 {
            return Ok(Ok(0.0));
        }
        Ok(self
            .take_if(key, per_minute, "SELECT true", &[])
            .await?
            .unwrap_or(Ok(0.0)))
    }

    /// Count one against `key` if it fits and the caller's check `caller` holds (a query of
    /// one boolean on `$5`, `$6`, ... = `args`; ours, a constant): None when it does not, and
    /// nothing was counted; else Ok(seconds by which the key was charged ahead before this),
    /// or Err(seconds until one more would fit). With `per_minute` 0 nothing is counted (the
    /// check still runs). One statement: simultaneous takes queue on the row and each sees
    /// the others'.
    async fn take_if(
        &self,
        key: &str,
        per_minute: u32,
        caller: &str,
        args: &[i64],
    ) -> Result<Option<Result<f64, f64>>, LimitError> {
        let step = WINDOW_SECS / per_minute.max(1) as f64;
        let sql = format!(
            "WITH caller AS ({caller}), taken AS ( \
                 INSERT INTO write_limits AS w (key, tat) \
                 SELECT $1, now() + make_interval(secs => $2) \
                 WHERE $4 AND coalesce((SELECT * FROM caller), false) \
                 ON CONFLICT (key) DO UPDATE SET tat = greatest(w.tat, now()) + make_interval(secs => $2) \
                 WHERE greatest(w.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $3) \
                 RETURNING extract(epoch FROM tat - now())::float8 AS ahead \
             ) \
             SELECT coalesce((SELECT * FROM caller), false), (SELECT ahead FROM taken)"
        );
        let mut query = sqlx::query_as(&sql)
            .bind(key)
            .bind(step)
            .bind(WINDOW_SECS)
            .bind(per_minute > 0);
        for arg in args {
            query = query.bind(*arg);
        }
        let (allowed, ahead): (bool, Option<f64>) = query.fetch_one(&self.pool).await?;
        Ok(match ahead {
            _ if !allowed => None,
            Some(ahead) => Some(Ok((ahead - step).max(0.0))),
            None if per_minute == 0 => Some(Ok(0.0)),
            None => Some(Err(self.wait(key, step).await?)),
        })
    }

    /// Seconds until one more count of `step` fits under `key`.
    async fn wait(&self, key: &str, step: f64) -> Result<f64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT extract(epoch FROM tat + make_interval(secs => $2) - now() - make_interval(secs => $3))::float8 \
             FROM write_limits WHERE key = $1",
        )
        .bind(key)
        .bind(step)
        .bind(WINDOW_SECS)
        .fetch_optional(&self.pool)
        .await
        .map(|wait| wait.unwrap_or(1.0))
    }

    /// Take back one count of `key` (never behind now).
    async fn refund(&self, key: &str, per_minute: u32) -> Result<(), sqlx::Error> {
        if per_minute == 0 {
            return Ok(());
        }
        let step = WINDOW_SECS / per_minute as f64;
        sqlx::query(
            "UPDATE write_limits SET tat = greatest(tat - make_interval(secs => $2), now()) \
             WHERE key = $1",
        )
        .bind(key)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Count `cost` against `key` whatever it says (never further ahead than a window).
    async fn charge(&self, key: &str, per_minute: u32, cost: u32) -> Result<(), sqlx::Error> {
        if per_minute == 0 {
            return Ok(());
        }
        let step = WINDOW_SECS / per_minute as f64 * cost as f64;
        sqlx::query(
            "INSERT INTO write_limits AS w (key, tat) VALUES ($1, now() + make_interval(secs => least($2, $3))) \
             ON CONFLICT (key) DO UPDATE SET tat = least(greatest(w.tat, now()) + make_interval(secs => $2), \
                                                         now() + make_interval(secs => $3))",
        )
        .bind(key)
        .bind(step)
        .bind(WINDOW_SECS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// `what` refused: one more fits in `wait` seconds.
fn refused(what: &str, per_minute: u32, wait: f64) -> Limited {
    Limited {
        message: format!("{what}: at most {per_minute} a minute. Please try again later."),
        retry_after: wait.ceil().max(1.0) as u64,
    }
}

#[derive(Default)]
struct Peek {
    /// One more would be too many: seconds until it would not.
    refused: Option<f64>,
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
