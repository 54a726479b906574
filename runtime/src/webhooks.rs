//! Webhook delivery of subscriptions: the same batches a reader gets from
//! `GET /subscriptions/<name>/events`, POSTed to the URL the operator gave
//! (`ensemble subscriptions webhook NAME URL`), in log order, at least once.
//!
//! - **One batch in flight per subscription**, across every server process: the deliverer
//!   holds the subscription's reader lease (the one readers take) for as long as it delivers,
//!   and renews it before each batch; a batch is acknowledged (`acked_position`) only once the
//!   receiver answered 2xx, and the next one starts after it.
//! - **Signed**: `X-Ensemble-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//!   `<t>.<body>`, under the subscription's webhook secret (shown once when the URL was set):
//!   the receiver recomputes it and refuses a stale `t`.
//! - **Retries with backoff** (doubling from 2 s up to 5 min) after a failure (no answer within
//!   10 s, a refused connection, a status other than 2xx); after `ENSEMBLE_WEBHOOK_MAX_ATTEMPTS`
//!   failures in a row it is set aside as dead: `ensemble subscriptions list` shows it with the
//!   last error, nothing is lost (the events wait past the acknowledged position), and
//!   `ensemble subscriptions retry NAME` takes it up again.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

use crate::subscriptions::{self, Subscription};

/// How long a receiver has to answer one batch.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Events scanned per batch.
const BATCH: i64 = 100;
/// Batches per subscription per round (then the others get their turn).
const BATCHES_PER_ROUND: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

pub struct Deliverer {
    pool: PgPool,
    http: reqwest::Client,
    policy: Policy,
    /// This process's name in the lease.
    me: String,
}

impl Deliverer {
    pub fn new(pool: PgPool, policy: Policy) -> Self {
        crate::wechat::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default settings builds");
        Self {
            pool,
            http,
            policy,
            me: format!("webhook:{}", uuid::Uuid::new_v4()),
        }
    }

    /// One round: every subscription whose webhook is due gets what has been committed since
    /// it last acknowledged. Returns the batches delivered.
    pub async fn deliver_due(&self, beat: impl Fn()) -> Result<usize, sqlx::Error> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM subscriptions WHERE webhook_url IS NOT NULL \
               AND webhook_dead_at IS NULL \
               AND (webhook_next_at IS NULL OR webhook_next_at <= now()) \
               AND (reader IS NULL OR reader = $1 OR reader_until < now()) ORDER BY name",
        )
        .bind(&self.me)
        .fetch_all(&self.pool)
        .await?;
        let mut delivered = 0;
        for name in due {
            beat();
            delivered += self.deliver(&name, &beat).await?;
        }
        Ok(delivered)
    }

    async fn deliver(&self, name: &str, beat: &impl Fn()) -> Result<usize, sqlx::Error> {
        let mut delivered = 0;
        let outcome = async {
            for _ in 0..BATCHES_PER_ROUND {
                beat();
                // Take (or renew) the lease: no other process or reader is in flight meanwhile.
                let Some((sub, secret)) = self.lease(name).await? else {
                    return Ok(());
                };
                let (Some(url), Some(secret)) = (sub.webhook_url.clone(), secret) else {
                    return Ok(());
                };
                let after = sub.acked_position;
                let (events, next) = subscriptions::batch(&self.pool, &sub, after, BATCH).await?;
                if next == after {
                    return Ok(());
                }
                if events.is_empty() {
                    // Only events of other types: nothing to send, move past them.
                    if !self.delivered(name, &secret, next).await? {
                        return Ok(());
                    }
                    continue;
                }
                let body = serde_json::json!({
                    "subscription": name,
                    "events": events.iter().map(crate::audit::event_json).collect::<Vec<_>>(),
                    "next": next,
                })
                .to_string();
                match self.post(&url, name, &secret, body).await {
                    // Acknowledged only if the subscription is still the one it was sent for
                    // (not deleted or made anew, its webhook not changed, the lease ours).
                    Ok(()) => {
                        if !self.delivered(name, &secret, next).await? {
                            return Ok(());
                        }
                        delivered += 1;
                    }
                    Err(why) => {
                        self.failed(name, &secret, &why).await?;
                        return Ok(());
                    }
                }
            }
            Ok::<(), sqlx::Error>(())
        }
        .await;
        // Give the lease back for readers and the next round (also after an error).
        let _ = subscriptions::release(&self.pool, name, &self.me).await;
        outcome.map(|()| delivered)
    }

    /// The subscription with its webhook secret, leased to this process (None: another holds
    /// it, or it has no webhook any more, or it is dead).
    async fn lease(
        &self,
        name: &str,
    ) -> Result<Option<(Subscription, Option<Vec<u8>>)>, sqlx::Error> {
        // The secret names the webhook (a new URL makes a new one): every write below is made
        // only while the lease and the secret both still hold.
        let leased: Option<Leased> = sqlx::query_as(&format!(
            "UPDATE subscriptions SET reader = $2, \
                 reader_until = now() + interval '{} seconds' \
             WHERE name = $1 AND webhook_url IS NOT NULL AND webhook_dead_at IS NULL \
               AND (reader IS NULL OR reader = $2 OR reader_until < now()) \
             RETURNING {}, webhook_secret",
            subscriptions::LEASE_SECONDS,
            subscriptions::COLUMNS
        ))
        .bind(name)
        .bind(&self.me)
        .fetch_optional(&self.pool)
        .await?;
        Ok(leased.map(|l| (l.subscription, l.webhook_secret)))
    }

    /// Record a batch up to `next` as delivered, if the subscription still holds this
    /// webhook under this process's lease; false if it does not (stop there).
    async fn delivered(&self, name: &str, secret: &[u8], next: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&format!(
            "UPDATE subscriptions s SET acked_position = $4, acked_at = now(), \
                 webhook_failures = 0, webhook_error = NULL, webhook_next_at = NULL \
             FROM events e \
             WHERE s.name = $1 AND s.reader = $2 AND s.webhook_secret = $3 \
               AND e.position = $4 AND {}",
            subscriptions::MOVES_FORWARD
        ))
        .bind(name)
        .bind(&self.me)
        .bind(secret)
        .bind(next)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// POST one batch; Err: why it did not arrive, in a few words.
    async fn post(&self, url: &str, name: &str, secret: &[u8], body: String) -> Result<(), String> {
        let t = chrono::Utc::now().timestamp();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "ensemble-webhooks")
            .header("x-ensemble-subscription", name)
            .header("x-ensemble-signature", signature(secret, t, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {TIMEOUT:?}")
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    "the request failed".to_string()
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }

    /// Count a failure, if the subscription still holds this webhook under this process's
    /// lease (a failure of an old URL is not the new one's), and set it aside after too many.
    async fn failed(&self, name: &str, secret: &[u8], why: &str) -> Result<(), sqlx::Error> {
        // The delay after the n-th failure in a row, in milliseconds, for n = 1, 2, ... (the
        // last one for every failure past them): the count is incremented in the statement.
        let delays: Vec<f64> = (1..=BACKOFF_STEPS)
            .map(|n| backoff(self.policy, n).as_millis() as f64)
            .collect();
        let counted: Option<(i32, bool)> = sqlx::query_as(
            "UPDATE subscriptions SET webhook_failures = webhook_failures + 1, \
                 webhook_error = $4, \
                 webhook_next_at = now() + ($5::float8[])[least(webhook_failures + 1, $6)] \
                     * interval '1 millisecond', \
                 webhook_dead_at = CASE WHEN webhook_failures + 1 >= $7 THEN now() END \
             WHERE name = $1 AND reader = $2 AND webhook_secret = $3 \
             RETURNING webhook_failures, webhook_dead_at IS NOT NULL",
        )
        .bind(name)
        .bind(&self.me)
        .bind(secret)
        .bind(why)
        .bind(&delays)
        .bind(delays.len() as i32)
        .bind(self.policy.max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        match counted {
            Some((failures, true)) => tracing::error!(
                subscription = name,
                failures,
                error = why,
                "a webhook keeps failing: set aside (ensemble subscriptions retry {name})"
            ),
            Some((failures, false)) => tracing::warn!(
                subscription = name,
                failures,
                error = why,
                retry_in = ?backoff(self.policy, failures),
                "a webhook delivery failed"
            ),
            None => {}
        }
        Ok(())
    }
}

/// A subscription as its lease returns it, with its webhook's secret.
#[derive(sqlx::FromRow)]
struct Leased {
    #[sqlx(flatten)]
    subscription: Subscription,
    webhook_secret: Option<Vec<u8>>,
}

/// Failures in a row after which the delay no longer grows (it has reached the max by then).
const BACKOFF_STEPS: i32 = 21;

/// The delay after the `failures`-th failure in a row.
fn backoff(policy: Policy, failures: i32) -> Duration {
    let doubled = policy
        .retry_base
        .saturating_mul(1u32 << (failures - 1).clamp(0, 20));
    doubled.min(policy.retry_max)
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "t={t},v1={}",
        crate::chain::hex(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(b"Jefe", 0, "");
        assert!(sig.starts_with("t=0,v1="));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            crate::chain::hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(signature(b"k", 1, "a"), signature(b"k", 1, "b"));
        assert_ne!(signature(b"k", 1, "a"), signature(b"k", 2, "a"));
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let policy = Policy {
            max_attempts: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
        };
        assert_eq!(backoff(policy, 1), Duration::from_secs(2));
        assert_eq!(backoff(policy, 2), Duration::from_secs(4));
        assert_eq!(backoff(policy, 5), Duration::from_secs(32));
        assert_eq!(backoff(policy, 9), Duration::from_secs(300));
        assert_eq!(backoff(policy, 1000), Duration::from_secs(300));
    }
}
