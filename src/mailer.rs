//! Mail delivery from the outbox that the `mail_outbox` consumer fills from the event log.
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several server processes never send the
//! same row; failures are retried with exponential backoff.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A transport for a lettre SMTP URL (`smtp://host:port`, `smtps://user:pass@host`, ...).
/// The error never repeats the URL: it may hold a password.
pub fn transport(url: &str) -> Result<Transport, String> {
    crate::wechat::install_crypto_provider();
    Transport::from_url(url)
        .map(|b| b.timeout(Some(Duration::from_secs(10))).build())
        .map_err(|e| format!("not a usable SMTP URL ({e})"))
}

pub struct Mailer {
    pool: PgPool,
    transport: Transport,
    from: Mailbox,
    retry_base: Duration,
    retry_max: Duration,
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

impl Mailer {
    pub fn new(
        pool: PgPool,
        transport: Transport,
        from: Mailbox,
        retry_base: Duration,
        retry_max: Duration,
    ) -> Self {
        Self {
            pool,
            transport,
            from,
            retry_base,
            retry_max,
        }
    }

    /// Send what is due, a few at a time, until nothing is due. Returns how many were sent.
    pub async fn deliver_due(&self) -> Result<u64, sqlx::Error> {
        let mut sent = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let batch: Vec<Pending> = sqlx::query_as(
                "SELECT id, event_position, recipient, subject, body, attempts FROM mail_outbox \
                 WHERE sent_at IS NULL AND next_attempt_at <= now() \
                 ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED",
            )
            .fetch_all(&mut *tx)
            .await?;
            if batch.is_empty() {
                tx.commit().await?;
                return Ok(sent);
            }
            let mut failed = 0;
            for mail in &batch {
                match self.send(mail).await {
                    Ok(()) => {
                        sent += 1;
                        sqlx::query("UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1")
                            .bind(mail.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Err(error) => {
                        failed += 1;
                        let delay = self.backoff(mail.attempts);
                        tracing::warn!(mail = mail.id, attempts = mail.attempts + 1, retry_in = ?delay, %error, "mail not sent");
                        sqlx::query(
                            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, \
                             next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                        )
                        .bind(mail.id)
                        .bind(&error)
                        .bind(delay.as_secs_f64())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            if failed == batch.len() {
                // The server is likely down: leave the rest for the next round.
                return Ok(sent);
            }
        }
    }

    fn backoff(&self, attempts_before: i32) -> Duration {
        let factor = 2u32.saturating_pow(attempts_before.clamp(0, 20) as u32);
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }

    async fn send(&self, mail: &Pending) -> Result<(), String> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            // The same id on every attempt: should a crash between the server's acceptance and
            // our bookkeeping cause a resend, mail clients recognise the duplicate.
            .message_id(Some(format!(
                "<ensemble.{}.{}@ensemble>",
                mail.event_position, mail.id
            )))
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| format!("message could not be built: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
