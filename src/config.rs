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
    /// None: a random secret is made at start-up (tokens die with the process).
    pub jwt_secret: Option<String>,
    pub wechat_api: String,
    pub orchestra_appid: String,
    pub orchestra_secret: String,
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
            crate::mailer::transport(url).map_err(|e| bad("ENSEMBLE_SMTP_URL", e))?;
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

        Ok(Self {
            database_url,
            listen,
            jwt_secret,
            wechat_api,
            orchestra_appid: get("ENSEMBLE_ORCHESTRA_APPID").unwrap_or_default(),
            orchestra_secret: get("ENSEMBLE_ORCHESTRA_SECRET").unwrap_or_default(),
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
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("wechat_api", &self.wechat_api)
            .field("orchestra_appid", &self.orchestra_appid)
            .field("orchestra_secret", &"<redacted>")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("tz", &self.tz)
            .field("today", &self.today)
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
