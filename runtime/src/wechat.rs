//! WeChat's code2session: exchanges a login code for the user's openid.

use std::sync::Once;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("WeChat could not be reached: {0}")]
    Unreachable(String),
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Refused { errcode: i64, errmsg: String },
}

/// The credentials of one mini-program.
#[derive(Clone)]
pub struct AppCredentials {
    pub appid: String,
    pub secret: String,
}

#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    base: String,
    /// Calls to WeChat at once: each holds a connection (a file descriptor), which the
    /// server's connection cap reserves room for.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Connections to WeChat at once (and idle ones kept).
pub const WECHAT_CONNECTIONS: usize = 32;

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
    // `session_key` is deliberately not read: it is a secret we have no use for.
}

/// What we accept as an openid before it goes into an event: WeChat's are 28 characters of
/// URL-safe base64; anything empty, long or with control characters is refused.
fn valid_openid(openid: &str) -> bool {
    !openid.is_empty() && openid.len() <= 128 && !openid.chars().any(char::is_control)
}

pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl WechatClient {
    pub fn new(base: &str) -> Self {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(WECHAT_CONNECTIONS)
            .build()
            .expect("an HTTP client with default settings builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(WECHAT_CONNECTIONS)),
        }
    }

    /// The openid for a login `code`.
    pub async fn code2session(
        &self,
        app: &AppCredentials,
        code: &str,
    ) -> Result<String, WechatError> {
        let url = format!("{}/sns/jscode2session", self.base);
        // A burst of logins waits here (bounded by the request's deadline) instead of opening
        // a connection each.
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| WechatError::Unreachable("the client is closed".into()))?;
        let response = self
            .http
            .get(url)
            .query(&[
                ("appid", app.appid.as_str()),
                ("secret", app.secret.as_str()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            // without_url: the URL carries the app secret.
            .map_err(|e| WechatError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        // WeChat sometimes labels its JSON text/plain: read the text and parse it ourselves.
        let text = response
            .text()
            .await
            .map_err(|e| WechatError::Unreachable(e.without_url().to_string()))?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|_| WechatError::Unreachable(format!("unexpected answer (HTTP {status})")))?;
        match answer {
            Answer {
                openid: Some(openid),
                errcode: None | Some(0),
                ..
            } if valid_openid(&openid) => Ok(openid),
            Answer {
                errcode, errmsg, ..
            } => Err(WechatError::Refused {
                errcode: errcode.unwrap_or(-1),
                errmsg: errmsg.unwrap_or_default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_openid;

    #[test]
    fn openids_that_could_not_be_stored_or_shown_are_refused() {
        assert!(valid_openid("oXyZ-1234567890abcdefghijklm"));
        assert!(!valid_openid(""));
        assert!(!valid_openid("o\u{0}x"));
        assert!(!valid_openid(&"o".repeat(129)));
    }
}
