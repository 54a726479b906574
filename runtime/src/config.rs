//! Configuration from the environment (and `.env` if present). The variable names are fixed:
//! deployments depend on them.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ensemble";

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Where `/metrics` (and health) are served instead of the public listener; None: on it.
    pub admin_listen: Option<SocketAddr>,
    /// Events a read model may lag behind the log before `/readyz` says not ready.
    pub ready_max_lag: u32,
    /// None: a random secret is made at start-up (tokens die with the process).
    pub jwt_secret: Option<String>,
    pub wechat_api: String,
    pub orchestra_appid: String,
    pub orchestra_secret: String,
    pub campus_appid: String,
    pub campus_secret: String,
    /// None: mail is queued but not sent until a URL is configured.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub tz: Tz,
    pub today: Option<NaiveDate>,
    /// First retry delay of a failed mail; it doubles per attempt up to `mail_retry_max`.
    pub mail_retry_base: Duration,
    pub mail_retry_max: Duration,
    /// How often background consumers poll the log when no notification wakes them.
    pub poll_interval: Duration,
    /// Connections for requests and consumers; half as many again wait for aggregate locks.
    pub pool_size: u32,
    /// HTTP timeouts and the connection limit.
    pub http: HttpLimits,
    /// Bounds on a command's waits (its turn, the read models).
    pub waits: Waits,
    /// Writes a member may make per minute (`POST`/`PUT`/`DELETE /absence/`); 0: no limit.
    pub write_limit: u32,
    /// Writes per campus user per minute; 0: no limit.
    pub campus_write_limit: u32,
    /// Login attempts (`POST /account/login`) per client address per minute; 0: no limit.
    pub login_limit_address: u32,
    /// Failed logins for one name from one client address per minute; 0: no limit.
    pub login_limit_name_address: u32,
    /// Failed logins for one name per minute, from anywhere (against distributed guessing);
    /// past it, each address gets one failure per name a minute, and an address that has not
    /// failed for the name is still heard. 0: no limit.
    pub login_limit_name: u32,
    /// Answers kept for safe retries per caller (`Idempotency-Key`); the oldest go first.
    pub retry_keys_per_caller: u32,
    /// Whether a manager's first WeChat binding waits for an operator's approval.
    pub manager_binding: ManagerBinding,
    /// The public base URL of the service (`https://api.example.org`), for links in answers;
    /// None: links are relative to the request's path (never built from a `Host` header).
    pub public_url: Option<String>,
    /// The whole of one SMTP exchange (connect, greeting, message, answer).
    pub smtp_timeout: Duration,
    /// Attempts before a mail that keeps failing is set aside as failed (dead letter).
    pub mail_max_attempts: i32,
    /// The least time between two mails to one address; what arrives meanwhile is sent
    /// together in one digest.
    pub mail_interval: Duration,
}

/// HTTP limits (`ENSEMBLE_HTTP_*`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// From the connection's first byte (or the end of the previous response) to the end of
    /// the request's headers; an idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// For the whole request body.
    pub body_timeout: Duration,
    /// For the whole request, from its headers to its response.
    pub request_timeout: Duration,
    /// How long a response write may make no progress (a client that stopped reading).
    pub write_timeout: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

/// Bounds on the waits of a command.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For its turn on the aggregate, and for everything before its append starts: past it
    /// the command gives up with nothing written. (Each statement is bounded by it too: the
    /// pool's statement_timeout.)
    pub turn: Duration,
    /// For the read models to hold its events after the commit.
    pub projection: Duration,
}

/// `ENSEMBLE_MANAGER_BINDING`: how a manager's first login binds their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerBinding {
    /// As the document says: the first login binds (and the notification addresses are told).
    Open,
    /// The first login asks; `ensemble roster approve NAME` binds.
    Approve,
}

/// A bad value in the environment: names the variable, never echoes a secret.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is fine; a malformed one is not.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(ConfigError {
                    var: ".env",
                    problem: e.to_string(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let bad = |var: &'static str, problem: String| ConfigError { var, problem };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(bad(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://".into(),
            ));
        }
        database_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| bad("DATABASE_URL", format!("not a PostgreSQL URL ({e})")))?;

        let listen = match get("ENSEMBLE_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some(v) => v.trim().parse().map_err(|_| {
                bad(
                    "ENSEMBLE_LISTEN",
                    format!("{v:?} is not an address like 127.0.0.1:8000"),
                )
            })?,
        };

        let admin_listen = match get("ENSEMBLE_ADMIN_LISTEN") {
            None => None,
            Some(v) => Some(v.trim().parse().map_err(|_| {
                bad(
                    "ENSEMBLE_ADMIN_LISTEN",
                    format!("{v:?} is not an address like 127.0.0.1:9000"),
                )
            })?),
        };

        let manager_binding = match get("ENSEMBLE_MANAGER_BINDING").as_deref().map(str::trim) {
            None | Some("open") => ManagerBinding::Open,
            Some("approve") => ManagerBinding::Approve,
            Some(v) => {
                return Err(bad(
                    "ENSEMBLE_MANAGER_BINDING",
                    format!("{v:?} is neither open nor approve"),
                ))
            }
        };

        let public_url = match get("ENSEMBLE_PUBLIC_URL") {
            None => None,
            Some(v) => {
                let v = v.trim().trim_end_matches('/').to_string();
                match reqwest::Url::parse(&v) {
                    Ok(u)
                        if matches!(u.scheme(), "http" | "https")
                            && u.host_str().is_some()
                            && u.query().is_none()
                            && u.fragment().is_none()
                            && u.username().is_empty()
                            && u.password().is_none() =>
                    {
                        Some(v)
                    }
                    _ => {
                        return Err(bad(
                            "ENSEMBLE_PUBLIC_URL",
                            format!("{v:?} is not an http(s) URL like https://api.example.org"),
                        ))
                    }
                }
            }
        };

        let jwt_secret = get("ENSEMBLE_JWT_SECRET");
        if let Some(s) = &jwt_secret {
            if s.len() < 16 {
                return Err(bad(
                    "ENSEMBLE_JWT_SECRET",
                    "must be at least 16 bytes".into(),
                ));
            }
        }

        let wechat_api = get("ENSEMBLE_WECHAT_API")
            .unwrap_or_else(|| "https://api.weixin.qq.com".into())
            .trim_end_matches('/')
            .to_string();
        match reqwest::Url::parse(&wechat_api) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(bad(
                    "ENSEMBLE_WECHAT_API",
                    format!("{wechat_api:?} is not an http(s) URL"),
                ))
            }
        }

        let smtp_url = get("ENSEMBLE_SMTP_URL");
        if let Some(url) = &smtp_url {
            crate::mailer::transport(url, Duration::from_secs(30))
                .map_err(|e| bad("ENSEMBLE_SMTP_URL", e))?;
        }
        let mail_from =
            get("ENSEMBLE_MAIL_FROM").unwrap_or_else(|| "Ensemble <ensemble@localhost>".into());
        mail_from.parse::<lettre::message::Mailbox>().map_err(|e| {
            bad(
                "ENSEMBLE_MAIL_FROM",
                format!("{mail_from:?} is not a mailbox ({e})"),
            )
        })?;

        let tz_name = get("ENSEMBLE_TZ").unwrap_or_else(|| "Asia/Shanghai".into());
        let tz: Tz = tz_name.trim().parse().map_err(|_| {
            bad(
                "ENSEMBLE_TZ",
                format!("{tz_name:?} is not an IANA time zone"),
            )
        })?;

        let today = match get("ENSEMBLE_TODAY") {
            None => None,
            Some(v) => Some(
                NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
                    bad("ENSEMBLE_TODAY", format!("{v:?} is not a date YYYY-MM-DD"))
                })?,
            ),
        };

        let seconds = |var: &'static str, default: f64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() && n > 0.0 && n <= 86_400.0 => {
                        Ok(Duration::from_secs_f64(n))
                    }
                    _ => Err(bad(
                        var,
                        format!("{v:?} is not a number of seconds between 0 and 86400"),
                    )),
                },
            }
        };
        let count = |var: &'static str, default: u32, least: u32| -> Result<u32, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= least && n <= 1_000_000 => Ok(n),
                    _ => Err(bad(
                        var,
                        format!("{v:?} is not a whole number from {least} to 1000000"),
                    )),
                },
            }
        };
        let http = HttpLimits {
            header_timeout: seconds("ENSEMBLE_HTTP_HEADER_TIMEOUT", 10.0)?,
            body_timeout: seconds("ENSEMBLE_HTTP_BODY_TIMEOUT", 15.0)?,
            request_timeout: seconds("ENSEMBLE_HTTP_REQUEST_TIMEOUT", 30.0)?,
            write_timeout: seconds("ENSEMBLE_HTTP_WRITE_TIMEOUT", 15.0)?,
            max_connections: count("ENSEMBLE_HTTP_MAX_CONNECTIONS", 512, 1)? as usize,
        };
        let waits = Waits {
            turn: seconds("ENSEMBLE_COMMAND_WAIT", 10.0)?,
            projection: seconds("ENSEMBLE_PROJECTION_WAIT", 5.0)?,
        };
        // A request must outlast the waits of its command, or a committed change could be
        // answered as a timeout: a command starts its append within ENSEMBLE_COMMAND_WAIT, each
        // statement ends within it too (statement_timeout), then the read models get theirs.
        if http.request_timeout <= waits.turn * 2 + waits.projection {
            return Err(bad(
                "ENSEMBLE_HTTP_REQUEST_TIMEOUT",
                format!(
                    "must be longer than 2 x ENSEMBLE_COMMAND_WAIT + ENSEMBLE_PROJECTION_WAIT ({:?})",
                    waits.turn * 2 + waits.projection
                ),
            ));
        }

        Ok(Self {
            http,
            waits,
            write_limit: count("ENSEMBLE_WRITE_LIMIT", 20, 0)?,
            campus_write_limit: count("ENSEMBLE_CAMPUS_WRITE_LIMIT", 30, 0)?,
            login_limit_address: count("ENSEMBLE_LOGIN_LIMIT_ADDRESS", 30, 0)?,
            login_limit_name_address: count("ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS", 10, 0)?,
            login_limit_name: count("ENSEMBLE_LOGIN_LIMIT_NAME", 100, 0)?,
            retry_keys_per_caller: count("ENSEMBLE_RETRY_KEYS_PER_CALLER", 1000, 1)?,
            manager_binding,
            public_url,
            smtp_timeout: seconds("ENSEMBLE_SMTP_TIMEOUT", 30.0)?,
            mail_max_attempts: count("ENSEMBLE_MAIL_MAX_ATTEMPTS", 10, 1)? as i32,
            mail_interval: seconds("ENSEMBLE_MAIL_INTERVAL", 60.0)?,
            ready_max_lag: count("ENSEMBLE_READY_MAX_LAG", 1000, 0)?,
            database_url,
            listen,
            admin_listen,
            jwt_secret,
            wechat_api,
            orchestra_appid: get("ENSEMBLE_ORCHESTRA_APPID").unwrap_or_default(),
            orchestra_secret: get("ENSEMBLE_ORCHESTRA_SECRET").unwrap_or_default(),
            campus_appid: get("ENSEMBLE_CAMPUS_APPID").unwrap_or_default(),
            campus_secret: get("ENSEMBLE_CAMPUS_SECRET").unwrap_or_default(),
            smtp_url,
            mail_from,
            tz,
            today,
            mail_retry_base: Duration::from_secs(5),
            mail_retry_max: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
            pool_size: 16,
        })
    }
}

/// Secrets are never printed.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("ready_max_lag", &self.ready_max_lag)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("wechat_api", &self.wechat_api)
            .field("orchestra_appid", &self.orchestra_appid)
            .field("orchestra_secret", &"<redacted>")
            .field("campus_appid", &self.campus_appid)
            .field("campus_secret", &"<redacted>")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("tz", &self.tz)
            .field("today", &self.today)
            .field("http", &self.http)
            .field("waits", &self.waits)
            .field("write_limit", &self.write_limit)
            .field("campus_write_limit", &self.campus_write_limit)
            .field("login_limit_address", &self.login_limit_address)
            .field("login_limit_name_address", &self.login_limit_name_address)
            .field("login_limit_name", &self.login_limit_name)
            .field("retry_keys_per_caller", &self.retry_keys_per_caller)
            .field("manager_binding", &self.manager_binding)
            .field("public_url", &self.public_url)
            .field("smtp_timeout", &self.smtp_timeout)
            .field("mail_max_attempts", &self.mail_max_attempts)
            .field("mail_interval", &self.mail_interval)
            .finish()
    }
}

/// A URL with any password replaced.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.wechat_api, "https://api.weixin.qq.com");
        assert_eq!(c.tz, chrono_tz::Asia::Shanghai);
        assert!(c.today.is_none() && c.smtp_url.is_none() && c.jwt_secret.is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("ENSEMBLE_LISTEN", "nowhere"),
            ("ENSEMBLE_TZ", "Mars/Olympus"),
            ("ENSEMBLE_TODAY", "20-1-2026x"),
            ("ENSEMBLE_WECHAT_API", "ftp://x"),
            ("ENSEMBLE_SMTP_URL", "carrier-pigeon://x"),
            ("ENSEMBLE_MAIL_FROM", "not a mailbox"),
            ("ENSEMBLE_JWT_SECRET", "short"),
            ("DATABASE_URL", "mysql://x"),
            ("ENSEMBLE_HTTP_HEADER_TIMEOUT", "0"),
            ("ENSEMBLE_HTTP_REQUEST_TIMEOUT", "soon"),
            ("ENSEMBLE_HTTP_MAX_CONNECTIONS", "0"),
            ("ENSEMBLE_SMTP_TIMEOUT", "-1"),
            ("ENSEMBLE_WRITE_LIMIT", "many"),
            ("ENSEMBLE_LOGIN_LIMIT_ADDRESS", "-3"),
            ("ENSEMBLE_LOGIN_LIMIT_NAME", "x"),
            ("ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS", "1.5"),
            ("ENSEMBLE_RETRY_KEYS_PER_CALLER", "0"),
            ("ENSEMBLE_MANAGER_BINDING", "sometimes"),
            ("ENSEMBLE_PUBLIC_URL", "javascript:alert(1)"),
            ("ENSEMBLE_PUBLIC_URL", "https://x.org/?q=1"),
            ("ENSEMBLE_MAIL_MAX_ATTEMPTS", "0"),
            ("ENSEMBLE_MAIL_INTERVAL", "inf"),
            ("ENSEMBLE_COMMAND_WAIT", "NaN"),
            ("ENSEMBLE_HTTP_REQUEST_TIMEOUT", "12"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = config(&[
            ("ENSEMBLE_JWT_SECRET", "a-very-secret-signing-key"),
            ("ENSEMBLE_ORCHESTRA_SECRET", "wechat-app-secret"),
            (
                "ENSEMBLE_SMTP_URL",
                "smtps://user:smtp-password@mail.example.org",
            ),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        for secret in [
            "a-very-secret-signing-key",
            "wechat-app-secret",
            "smtp-password",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
