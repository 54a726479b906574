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
    /// Hot standbys of `database_url` that serve the services' GETs (empty: the primary
    /// serves everything).
    pub read_database_urls: Vec<String>,
    /// A standby further behind the primary than this is taken out of rotation.
    pub read_max_lag: Duration,
    /// How long a read that names a position (`X-Ensemble-Position`) waits for a standby to
    /// reach it before the primary answers it.
    pub read_wait: Duration,
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
    /// Replays of past moments the time machine keeps (shared by every process).
    pub view_replays: u32,
    /// Bytes of read answers kept between reads ([`crate::answers`]); 0: none kept.
    pub answer_cache_bytes: u64,
    /// Failed webhook deliveries in a row before a subscription's webhook is set aside (dead).
    pub webhook_max_attempts: i32,
    /// First delay after a failed webhook delivery; it doubles per failure up to the max.
    pub webhook_retry_base: Duration,
    pub webhook_retry_max: Duration,
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
    pub var: String,
    pub problem: String,
}

/// Every variable the server reads, with its default and its parser, in one place. Parsed by
/// clap from `--NAME=value` arguments made from the lookup (so a test can hand it a map, and
/// the names stay exactly the variables deployments set); a bad value is reported through
/// [`ConfigError`] with the parser's words only, never clap's message (which quotes the value,
/// and a value may be a secret).
#[derive(clap::Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Settings {
    #[arg(long = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = database_url)]
    database_url: String,
    #[arg(long = "ENSEMBLE_READ_DATABASE_URL", value_parser = read_database_urls)]
    read_database_urls: Option<ReadUrls>,
    #[arg(long = "ENSEMBLE_READ_MAX_LAG", default_value = "5", value_parser = seconds)]
    read_max_lag: Duration,
    #[arg(long = "ENSEMBLE_READ_WAIT", default_value = "0.5", value_parser = seconds)]
    read_wait: Duration,
    #[arg(long = "ENSEMBLE_LISTEN", default_value = "127.0.0.1:8000", value_parser = address("127.0.0.1:8000"))]
    listen: SocketAddr,
    #[arg(long = "ENSEMBLE_ADMIN_LISTEN", value_parser = address("127.0.0.1:9000"))]
    admin_listen: Option<SocketAddr>,
    #[arg(long = "ENSEMBLE_READY_MAX_LAG", default_value = "1000", value_parser = count(0))]
    ready_max_lag: u32,
    #[arg(long = "ENSEMBLE_JWT_SECRET", value_parser = jwt_secret)]
    jwt_secret: Option<String>,
    #[arg(long = "ENSEMBLE_WECHAT_API", default_value = "https://api.weixin.qq.com", value_parser = wechat_api)]
    wechat_api: String,
    #[arg(long = "ENSEMBLE_ORCHESTRA_APPID", default_value = "")]
    orchestra_appid: String,
    #[arg(long = "ENSEMBLE_ORCHESTRA_SECRET", default_value = "")]
    orchestra_secret: String,
    #[arg(long = "ENSEMBLE_CAMPUS_APPID", default_value = "")]
    campus_appid: String,
    #[arg(long = "ENSEMBLE_CAMPUS_SECRET", default_value = "")]
    campus_secret: String,
    #[arg(long = "ENSEMBLE_SMTP_URL", value_parser = smtp_url)]
    smtp_url: Option<String>,
    #[arg(long = "ENSEMBLE_MAIL_FROM", default_value = "Ensemble <ensemble@localhost>", value_parser = mailbox)]
    mail_from: String,
    #[arg(long = "ENSEMBLE_TZ", default_value = "Asia/Shanghai", value_parser = time_zone)]
    tz: Tz,
    #[arg(long = "ENSEMBLE_TODAY", value_parser = date)]
    today: Option<NaiveDate>,
    #[arg(long = "ENSEMBLE_HTTP_HEADER_TIMEOUT", default_value = "10", value_parser = seconds)]
    header_timeout: Duration,
    #[arg(long = "ENSEMBLE_HTTP_BODY_TIMEOUT", default_value = "15", value_parser = seconds)]
    body_timeout: Duration,
    #[arg(long = "ENSEMBLE_HTTP_REQUEST_TIMEOUT", default_value = "30", value_parser = seconds)]
    request_timeout: Duration,
    #[arg(long = "ENSEMBLE_HTTP_WRITE_TIMEOUT", default_value = "15", value_parser = seconds)]
    write_timeout: Duration,
    #[arg(long = "ENSEMBLE_HTTP_MAX_CONNECTIONS", default_value = "512", value_parser = count(1))]
    max_connections: u32,
    #[arg(long = "ENSEMBLE_COMMAND_WAIT", default_value = "10", value_parser = seconds)]
    command_wait: Duration,
    #[arg(long = "ENSEMBLE_PROJECTION_WAIT", default_value = "5", value_parser = seconds)]
    projection_wait: Duration,
    #[arg(long = "ENSEMBLE_WRITE_LIMIT", default_value = "20", value_parser = count(0))]
    write_limit: u32,
    #[arg(long = "ENSEMBLE_CAMPUS_WRITE_LIMIT", default_value = "30", value_parser = count(0))]
    campus_write_limit: u32,
    #[arg(long = "ENSEMBLE_LOGIN_LIMIT_ADDRESS", default_value = "30", value_parser = count(0))]
    login_limit_address: u32,
    #[arg(long = "ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS", default_value = "10", value_parser = count(0))]
    login_limit_name_address: u32,
    #[arg(long = "ENSEMBLE_LOGIN_LIMIT_NAME", default_value = "100", value_parser = count(0))]
    login_limit_name: u32,
    #[arg(long = "ENSEMBLE_RETRY_KEYS_PER_CALLER", default_value = "1000", value_parser = count(1))]
    retry_keys_per_caller: u32,
    #[arg(long = "ENSEMBLE_MANAGER_BINDING", default_value = "open", value_parser = manager_binding)]
    manager_binding: ManagerBinding,
    #[arg(long = "ENSEMBLE_PUBLIC_URL", value_parser = public_url)]
    public_url: Option<String>,
    #[arg(long = "ENSEMBLE_SMTP_TIMEOUT", default_value = "30", value_parser = seconds)]
    smtp_timeout: Duration,
    #[arg(long = "ENSEMBLE_MAIL_MAX_ATTEMPTS", default_value = "10", value_parser = count(1))]
    mail_max_attempts: u32,
    #[arg(long = "ENSEMBLE_MAIL_INTERVAL", default_value = "60", value_parser = seconds)]
    mail_interval: Duration,
    #[arg(long = "ENSEMBLE_VIEW_REPLAYS", default_value = "8", value_parser = count(1))]
    view_replays: u32,
    #[arg(long = "ENSEMBLE_ANSWER_CACHE_MB", default_value = "32", value_parser = count(0))]
    answer_cache_mb: u32,
    #[arg(long = "ENSEMBLE_WEBHOOK_MAX_ATTEMPTS", default_value = "10", value_parser = count(1))]
    webhook_max_attempts: u32,
}

/// The variables [`Config`] reads (for documentation checks and `.env.example`).
pub fn variables() -> Vec<String> {
    use clap::CommandFactory;
    Settings::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

fn database_url(v: &str) -> Result<String, String> {
    if !(v.starts_with("postgres://") || v.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    v.parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
    Ok(v.to_string())
}

/// `ENSEMBLE_READ_DATABASE_URL`: PostgreSQL URLs separated by commas.
#[derive(Clone)]
struct ReadUrls(Vec<String>);

fn read_database_urls(v: &str) -> Result<ReadUrls, String> {
    let urls: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| database_url(u).map_err(|e| format!("{}: {e}", redact_url(u))))
        .collect::<Result<_, _>>()?;
    if urls.len() > 16 {
        return Err("names more than 16 standbys".into());
    }
    Ok(ReadUrls(urls))
}

fn address(example: &'static str) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |v| {
        v.trim()
            .parse()
            .map_err(|_| format!("{v:?} is not an address like {example}"))
    }
}

fn jwt_secret(v: &str) -> Result<String, String> {
    if v.len() < 16 {
        return Err("must be at least 16 bytes".into());
    }
    Ok(v.to_string())
}

fn wechat_api(v: &str) -> Result<String, String> {
    let v = v.trim_end_matches('/');
    match reqwest::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(v.to_string()),
        _ => Err(format!("{:?} is not an http(s) URL", redact_url(v))),
    }
}

fn smtp_url(v: &str) -> Result<String, String> {
    crate::mailer::transport(v, Duration::from_secs(30))?;
    Ok(v.to_string())
}

fn mailbox(v: &str) -> Result<String, String> {
    v.parse::<lettre::message::Mailbox>()
        .map_err(|e| format!("{v:?} is not a mailbox ({e})"))?;
    Ok(v.to_string())
}

fn time_zone(v: &str) -> Result<Tz, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not an IANA time zone"))
}

fn date(v: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{v:?} is not a date YYYY-MM-DD"))
}

fn seconds(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 86_400.0 => Ok(Duration::from_secs_f64(n)),
        _ => Err(format!(
            "{v:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

fn count(least: u32) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |v| match v.trim().parse::<u32>() {
        Ok(n) if n >= least && n <= 1_000_000 => Ok(n),
        _ => Err(format!(
            "{v:?} is not a whole number from {least} to 1000000"
        )),
    }
}

fn manager_binding(v: &str) -> Result<ManagerBinding, String> {
    match v.trim() {
        "open" => Ok(ManagerBinding::Open),
        "approve" => Ok(ManagerBinding::Approve),
        _ => Err(format!("{v:?} is neither open nor approve")),
    }
}

fn public_url(v: &str) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/');
    match reqwest::Url::parse(v) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(v.to_string())
        }
        _ => Err(format!(
            "{:?} is not an http(s) URL like https://api.example.org (without a user or password)",
            redact_url(v)
        )),
    }
}

/// The variable and the parser's words from clap's error (clap's own message quotes the
/// value, which may be a secret).
fn config_error(e: clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let var = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg
            .trim_start_matches('-')
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => "configuration".to_string(),
    };
    let problem = match std::error::Error::source(&e) {
        Some(source) => source.to_string(),
        None => format!("not accepted ({})", e.kind()),
    };
    ConfigError { var, problem }
}

/// A `.env` that cannot be read, said without its lines (they may hold secrets): the variable
/// when the line names one.
fn dotenv_error(e: dotenvy::Error) -> ConfigError {
    match e {
        dotenvy::Error::LineParse(line, at) => {
            let name = line
                .split_once('=')
                .map(|(name, _)| name.trim().trim_start_matches("export ").trim())
                .filter(|name| {
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            ConfigError {
                var: ".env".into(),
                problem: match name {
                    Some(name) => format!(
                        "the line of {name} cannot be read (at character {at}; its value is not shown)"
                    ),
                    None => format!(
                        "a line cannot be read (at character {at}; it is not shown: it may hold a secret)"
                    ),
                },
            }
        }
        e => ConfigError {
            var: ".env".into(),
            problem: e.to_string(),
        },
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is fine; a malformed one is not.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(dotenv_error(e));
            }
        }
        // A value that is not text is refused, not taken for an unset one.
        for name in variables() {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(&name) {
                return Err(ConfigError {
                    var: name,
                    problem: "is not valid UTF-8".into(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any lookup (the environment, or a map in tests). A blank value is unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use clap::Parser;
        let arguments = variables().into_iter().filter_map(|name| {
            get(&name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("--{name}={v}"))
        });
        let s = Settings::try_parse_from(arguments).map_err(config_error)?;

        let http = HttpLimits {
            header_timeout: s.header_timeout,
            body_timeout: s.body_timeout,
            request_timeout: s.request_timeout,
            write_timeout: s.write_timeout,
            max_connections: s.max_connections as usize,
        };
        let waits = Waits {
            turn: s.command_wait,
            projection: s.projection_wait,
        };
        // A request must outlast the waits of its command, or a committed change could be
        // answered as a timeout: a command starts its append within ENSEMBLE_COMMAND_WAIT, each
        // statement ends within it too (statement_timeout), then the read models get theirs.
        if http.request_timeout <= waits.turn * 2 + waits.projection {
            return Err(ConfigError {
                var: "ENSEMBLE_HTTP_REQUEST_TIMEOUT".into(),
                problem: format!(
                    "must be longer than 2 x ENSEMBLE_COMMAND_WAIT + ENSEMBLE_PROJECTION_WAIT ({:?})",
                    waits.turn * 2 + waits.projection
                ),
            });
        }

        Ok(Self {
            http,
            waits,
            write_limit: s.write_limit,
            campus_write_limit: s.campus_write_limit,
            login_limit_address: s.login_limit_address,
            login_limit_name_address: s.login_limit_name_address,
            login_limit_name: s.login_limit_name,
            retry_keys_per_caller: s.retry_keys_per_caller,
            manager_binding: s.manager_binding,
            public_url: s.public_url,
            smtp_timeout: s.smtp_timeout,
            mail_max_attempts: s.mail_max_attempts as i32,
            mail_interval: s.mail_interval,
            view_replays: s.view_replays,
            answer_cache_bytes: u64::from(s.answer_cache_mb) << 20,
            webhook_max_attempts: s.webhook_max_attempts as i32,
            webhook_retry_base: Duration::from_secs(2),
            webhook_retry_max: Duration::from_secs(300),
            ready_max_lag: s.ready_max_lag,
            database_url: s.database_url,
            read_database_urls: s.read_database_urls.map(|r| r.0).unwrap_or_default(),
            read_max_lag: s.read_max_lag,
            read_wait: s.read_wait,
            listen: s.listen,
            admin_listen: s.admin_listen,
            jwt_secret: s.jwt_secret,
            wechat_api: s.wechat_api,
            orchestra_appid: s.orchestra_appid,
            orchestra_secret: s.orchestra_secret,
            campus_appid: s.campus_appid,
            campus_secret: s.campus_secret,
            smtp_url: s.smtp_url,
            mail_from: s.mail_from,
            tz: s.tz,
            today: s.today,
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
            .field(
                "read_database_urls",
                &self
                    .read_database_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("read_max_lag", &self.read_max_lag)
            .field("read_wait", &self.read_wait)
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
            .field("view_replays", &self.view_replays)
            .field("answer_cache_bytes", &self.answer_cache_bytes)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
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
            assert!(!err.problem.is_empty(), "{err}");
        }
    }

    #[test]
    fn a_bad_secret_is_named_but_never_shown() {
        let err = config(&[("ENSEMBLE_JWT_SECRET", "hunter2-secret")]).unwrap_err();
        assert_eq!(err.var, "ENSEMBLE_JWT_SECRET");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_malformed_env_file_names_the_variable_but_never_shows_the_line() {
        for (text, named) in [
            ("ENSEMBLE_JWT_SECRET=\"hunter5hunter5hunter5\n", true),
            ("DATABASE_URL=postgres://u:hunter7@db/x bad\n", false),
        ] {
            let e = dotenvy::from_read_iter(text.as_bytes())
                .find_map(Result::err)
                .expect("a malformed line");
            let err = dotenv_error(e);
            assert_eq!(err.var, ".env");
            assert!(!err.to_string().contains("hunter"), "{err}");
            assert_eq!(
                err.to_string().contains("ENSEMBLE_JWT_SECRET"),
                named,
                "{err}"
            );
        }
        let err = config(&[("ENSEMBLE_PUBLIC_URL", "https://u:pw-secret@x.org/")]).unwrap_err();
        assert!(!err.to_string().contains("pw-secret"), "{err}");
    }

    #[test]
    fn blank_values_are_unset_and_values_may_start_with_a_dash() {
        let c = config(&[
            ("ENSEMBLE_LISTEN", "  "),
            ("ENSEMBLE_ORCHESTRA_SECRET", "-x=y"),
        ])
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.orchestra_secret, "-x=y");
    }

    #[test]
    fn every_variable_is_in_the_example_and_the_operators_guide() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in [".env.example", "docs/operators.md"] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for var in variables() {
                assert!(text.contains(&var), "{var} is not described in {file}");
            }
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
