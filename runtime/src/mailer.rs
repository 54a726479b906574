//! Mail delivery from the outbox that the `mail_outbox` consumer fills from the event log.
//!
//! One round: claim (one committed statement) the due rows of one address that has not been
//! mailed within the interval, by setting a lease on them; send them as one message (a digest
//! when there are several) with the whole SMTP exchange bounded; record the outcome at once.
//! No transaction is held across SMTP. Several processes never send the same row: a claimed
//! row is skipped until its lease runs out, which only happens if its sender died (a record
//! the database refuses for a while is tried again within the lease). The one window left: a
//! crash after the SMTP server accepted a message but before we recorded it sends that
//! message again once the lease has run out (its Message-ID is the same).

use std::time::Duration;

use aggregates::orchestra::EmailAddress;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A transport for a lettre SMTP URL (`smtp://host:port`, `smtps://user:pass@host`, ...).
/// The error never repeats the URL: it may hold a password.
pub fn transport(url: &str, timeout: Duration) -> Result<Transport, String> {
    crate::wechat::install_crypto_provider();
    Transport::from_url(url)
        .map(|b| b.timeout(Some(timeout)).build())
        .map_err(|e| format!("not a usable SMTP URL ({e})"))
}

/// The one check of an address that mail will go to: our own syntax rules (a dot-atom local
/// part, a host name of letter-digit-hyphen labels) and lettre's parser, which builds the
/// message. The CLI refuses what this refuses; the worker sets aside what this refuses.
pub fn recipient(address: &str) -> Result<Mailbox, String> {
    let email = EmailAddress::parse(address).map_err(|e| e.to_string())?;
    email
        .as_str()
        .parse::<Mailbox>()
        .map_err(|e| format!("{address:?} is not a deliverable address ({e})"))
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The whole of one SMTP exchange.
    pub timeout: Duration,
    /// First retry delay; it doubles per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts before a mail is set aside as failed.
    pub max_attempts: i32,
    /// The least time between two mails to one address.
    pub interval: Duration,
}

pub struct Mailer {
    pool: PgPool,
    transport: Transport,
    from: Mailbox,
    policy: Policy,
    /// Held from a claim to the record of its outcome: a graceful stop takes it, so that no
    /// message is cut between the SMTP server's acceptance and our record of it.
    sending: tokio::sync::Mutex<()>,
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    event_position: i64,
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
}

enum Failure {
    /// Worth another try later (timeouts, connection trouble, 4xx).
    Transient(String),
    /// Will never work (a bad address, a 5xx).
    Permanent(String),
}

/// How many rows one digest may carry.
const DIGEST_MAX: i64 = 50;

/// Between two tries to record a sent mail.
const RECORD_RETRY: Duration = Duration::from_millis(200);

impl Mailer {
    pub fn new(pool: PgPool, transport: Transport, from: Mailbox, policy: Policy) -> Self {
        Self {
            pool,
            transport,
            from,
            policy,
            sending: Default::default(),
        }
    }

    /// Send what is due, one address at a time, until nothing is due or the server seems
    /// down. Returns how many outbox rows were delivered. `beat` is called between rounds.
    /// Wait until no message is between its claim and its record, and keep it so (for a
    /// graceful stop: abort the mail task while holding this).
    pub async fn quiesce(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.sending.lock().await
    }

    pub async fn deliver_due(&self, beat: impl Fn()) -> Result<u64, sqlx::Error> {
        let mut delivered = 0;
        loop {
            beat();
            let _sending = self.sending.lock().await;
            let claimed_at = tokio::time::Instant::now();
            let batch = self.claim().await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
            match self.send(&batch).await {
                Ok(()) => {
                    self.record_sent_within_lease(claimed_at, &ids, &batch[0].recipient)
                        .await?;
                    delivered += ids.len() as u64;
                }
                Err(Failure::Permanent(error)) => {
                    // The error stays in the outbox (`mail list`): an SMTP answer may quote the
                    // address, which has no place in a log line.
                    tracing::warn!(mails = ?ids, "mail failed for good; set aside");
                    self.record_failed(&ids, &error).await?;
                }
                Err(Failure::Transient(error)) => {
                    let attempts = batch.iter().map(|m| m.attempts).max().unwrap_or(1);
                    if attempts >= self.policy.max_attempts {
                        tracing::warn!(mails = ?ids, attempts, "mail failed too often; set aside");
                        self.record_failed(&ids, &error).await?;
                    } else {
                        let delay = self.backoff(attempts);
                        tracing::warn!(mails = ?ids, attempts, retry_in = ?delay, "mail not sent; see `ensemble mail list`");
                        self.record_retry(&ids, &error, delay).await?;
                    }
                    // The server is likely down: leave the rest for the next round.
                    return Ok(delivered);
                }
            }
        }
    }

    /// How long a claim holds its rows: it outlives the bounded exchange, so only a dead
    /// sender's rows are reclaimed.
    fn lease(&self) -> Duration {
        self.policy.timeout * 2 + Duration::from_secs(5)
    }

    /// Record that the rows went, trying again while the database is away (a restart, every
    /// session terminated, a lock held longer than a statement may wait) for as long as the
    /// claim holds them: a message the SMTP server accepted and whose record is lost would be
    /// sent again once the lease ran out. (The soak found it: one message twice after a
    /// PostgreSQL restart.) Only a sender that dies meanwhile still sends twice.
    async fn record_sent_within_lease(
        &self,
        claimed_at: tokio::time::Instant,
        ids: &[i64],
        recipient: &str,
    ) -> Result<(), sqlx::Error> {
        let until = claimed_at + self.lease() - Duration::from_secs(1);
        let mut warned = false;
        loop {
            match self.record_sent(ids, recipient).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + RECORD_RETRY < until => {
                    if !warned {
                        tracing::warn!(mails = ?ids, error = %e, "a sent mail could not be recorded yet; trying again");
                        warned = true;
                    }
                    tokio::time::sleep(RECORD_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Claim the due rows of one address, committed before any SMTP traffic.
    async fn claim(&self) -> Result<Vec<Pending>, sqlx::Error> {
        let lease = self.lease().as_secs_f64();
        sqlx::query_as(
            "WITH target AS ( \
                 SELECT o.recipient FROM mail_outbox o \
                 LEFT JOIN mail_throttle t ON t.recipient_hash = encode(sha256(convert_to(o.recipient, 'UTF8')), 'hex') \
                 WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= now() \
                   AND (o.claimed_until IS NULL OR o.claimed_until < now()) \
                   AND (t.last_sent_at IS NULL OR t.last_sent_at + make_interval(secs => $1) <= now()) \
                 ORDER BY o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED \
             ), batch AS ( \
                 SELECT o.id FROM mail_outbox o JOIN target USING (recipient) \
                 WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= now() \
                   AND (o.claimed_until IS NULL OR o.claimed_until < now()) \
                 ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED \
             ) \
             UPDATE mail_outbox m SET claimed_until = now() + make_interval(secs => $2), \
                 attempts = m.attempts + 1 \
             FROM batch WHERE m.id = batch.id \
             RETURNING m.id, m.event_position, m.recipient, m.subject, m.body, m.attempts",
        )
        .bind(self.policy.interval.as_secs_f64())
        .bind(lease)
        .bind(DIGEST_MAX)
        .fetch_all(&self.pool)
        .await
        .map(|mut rows: Vec<Pending>| {
            rows.sort_by_key(|m| m.id);
            rows
        })
    }

    async fn record_sent(&self, ids: &[i64], recipient: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH sent AS ( \
                 UPDATE mail_outbox SET sent_at = now(), claimed_until = NULL, last_error = NULL \
                 WHERE id = ANY($1) RETURNING 1 \
             ) \
             INSERT INTO mail_throttle (recipient_hash, last_sent_at) \
             VALUES (encode(sha256(convert_to($2, 'UTF8')), 'hex'), now()) \
             ON CONFLICT (recipient_hash) DO UPDATE SET last_sent_at = excluded.last_sent_at",
        )
        .bind(ids)
        .bind(recipient)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_failed(&self, ids: &[i64], error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE mail_outbox SET failed_at = now(), claimed_until = NULL, last_error = $2 \
             WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_retry(
        &self,
        ids: &[i64],
        error: &str,
        delay: Duration,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE mail_outbox SET claimed_until = NULL, last_error = $2, \
             next_attempt_at = now() + make_interval(secs => $3) WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(error)
        .bind(delay.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let factor = 2u32.saturating_pow((attempts - 1).clamp(0, 20) as u32);
        self.policy
            .retry_base
            .saturating_mul(factor)
            .min(self.policy.retry_max)
    }

    /// One message for `batch` (all to one address), sent within the time bound.
    async fn send(&self, batch: &[Pending]) -> Result<(), Failure> {
        let first = &batch[0];
        let to = recipient(&first.recipient).map_err(Failure::Permanent)?;
        let (subject, body, message_id) = match batch {
            [one] => (
                one.subject.clone(),
                one.body.clone(),
                format!("<ensemble.{}.{}@ensemble>", one.event_position, one.id),
            ),
            many => {
                let last = &many[many.len() - 1];
                let subject = format!("{} new absence requests", many.len());
                let body = many
                    .iter()
                    .map(|m| format!("{}\n\n{}", m.subject, m.body))
                    .collect::<Vec<_>>()
                    .join("\n----\n\n");
                let id = format!(
                    "<ensemble.digest.{}-{}.{}@ensemble>",
                    first.id,
                    last.id,
                    many.len()
                );
                (subject, body, id)
            }
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            // The same id on every attempt of the same rows: should a crash between the
            // server's acceptance and our bookkeeping cause a resend, mail clients recognise
            // the duplicate.
            .message_id(Some(message_id))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| Failure::Permanent(format!("message could not be built: {e}")))?;
        match tokio::time::timeout(self.policy.timeout, self.transport.send(message)).await {
            Err(_) => Err(Failure::Transient(format!(
                "SMTP exchange took longer than {:?}",
                self.policy.timeout
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            Ok(Err(e)) => Err(Failure::Transient(e.to_string())),
        }
    }
}

/// A mail as the operator sees it (`ensemble mail list`).
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub attempts: i32,
    pub state: String,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const OUTBOX_ROW: &str = "SELECT id, recipient, subject, attempts, \
    CASE WHEN sent_at IS NOT NULL THEN 'sent' WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END AS state, \
    last_error, created_at FROM mail_outbox";

/// The newest mails (or only the failed ones), newest first.
pub async fn list(
    pool: &PgPool,
    failed_only: bool,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let filter = if failed_only {
        " WHERE failed_at IS NOT NULL"
    } else {
        ""
    };
    sqlx::query_as(&format!("{OUTBOX_ROW}{filter} ORDER BY id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Put a failed mail back in the queue with a fresh count of attempts. False if `id` is not a
/// failed mail.
pub async fn retry(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE mail_outbox SET failed_at = NULL, attempts = 0, next_attempt_at = now(), \
         claimed_until = NULL WHERE id = $1 AND failed_at IS NOT NULL AND sent_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
