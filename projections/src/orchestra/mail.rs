use aggregates::orchestra::absences::{AbsenceEvent, MemberAbsences};
use aggregates::orchestra::roster::{former_member, member_subject, Roster, RosterEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::personal::{KeySet, ERASED_TEXT};
use crate::{Projection, ProjectionError, StoredEvent};

const CONTEXT: &str = "orchestra";

/// Turns each new absence into one `mail_outbox` row per notification address as of that
/// event; the mail worker delivers them. Never rebuilt, so nothing is ever mailed twice; its
/// rows are keyed by (event position, recipient), so even a replay would add nothing.
pub struct MailOutbox;

#[async_trait]
impl Projection for MailOutbox {
    fn name(&self) -> &'static str {
        "mail_outbox"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn kept_tables(&self) -> &'static [&'static str] {
        &["mail_outbox"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        stored: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if let Some(event) = stored.decode::<RosterEvent>(Roster::TYPE)? {
            match event {
                RosterEvent::NotifyAddressAdded { email } => {
                    sqlx::query(
                        "INSERT INTO mail_recipients (context, email) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(CONTEXT)
                    .bind(email.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                RosterEvent::NotifyAddressRemoved { email } => {
                    sqlx::query("DELETE FROM mail_recipients WHERE context = $1 AND email = $2")
                        .bind(CONTEXT)
                        .bind(email.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                RosterEvent::MemberForgotten { member_id } => {
                    // Their mails, sent or not, keep no trace of them; those not yet sent are
                    // set aside.
                    sqlx::query(
                        "UPDATE mail_outbox SET subject = $2, body = $3, \
                         failed_at = CASE WHEN sent_at IS NULL THEN coalesce(failed_at, now()) END, \
                         last_error = CASE WHEN sent_at IS NULL THEN 'erased' ELSE last_error END \
                         WHERE person = $1",
                    )
                    .bind(member_subject(member_id))
                    .bind(format!("Absence request of {}", former_member(member_id)))
                    .bind("The member this mail was about has been erased.\n")
                    .execute(&mut *tx)
                    .await?;
                    // Answers kept for safe retries that were stored while the erasure was
                    // committing (the erasure's own statement emptied the rest).
                    sqlx::query("DELETE FROM idempotency_keys")
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            return Ok(());
        }
        let Some(AbsenceEvent::AbsenceApplied {
            absence_id,
            applier,
            section,
            date,
            kind,
            reason,
            applied_on,
            ..
        }) = stored.decode::<AbsenceEvent>(MemberAbsences::TYPE)?
        else {
            return Ok(());
        };
        let stored_person = member_subject(applier);
        // The roster read model is caught up in the same pass, before this one.
        let keys = KeySet::load(&mut *tx, [reason.key.as_str()]).await?;
        let reason = keys.open_or(&reason, ERASED_TEXT);
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM orchestra_members WHERE id = $1")
                .bind(applier as i64)
                .fetch_optional(&mut *tx)
                .await?;
        let applier = name.unwrap_or_else(|| former_member(applier));
        let subject = format!(
            "New absence request #{absence_id}: {applier}, {date} ({})",
            kind.as_str()
        );
        let body = format!(
            "{applier} ({section}) asks to miss the rehearsal of {date}.\n\n\
             Type: {kind}\nReason: {reason}\nApplied on: {applied_on}\nAbsence id: {absence_id}\n",
            section = section.as_str(),
            kind = kind.as_str(),
        );
        sqlx::query(
            "INSERT INTO mail_outbox (event_position, recipient, subject, body, person) \
             SELECT $1, email, $3, $4, $5 FROM mail_recipients WHERE context = $2 \
             ON CONFLICT (event_position, recipient) DO NOTHING",
        )
        .bind(stored.position)
        .bind(CONTEXT)
        .bind(subject)
        .bind(body)
        .bind(stored_person)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
