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
        self.apply_batch(tx, std::slice::from_ref(stored)).await
    }

    /// Roster events in order; each run of applications between them becomes one insert, with
    /// the keys and the names it needs read once.
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut run: Vec<(i64, AbsenceEvent)> = Vec::new();
        for stored in events {
            if stored.aggregate_type == Roster::TYPE {
                flush(tx, std::mem::take(&mut run)).await?;
                roster_event(tx, stored).await?;
            } else if let Some(event @ AbsenceEvent::AbsenceApplied { .. }) =
                stored.decode::<AbsenceEvent>(MemberAbsences::TYPE)?
            {
                run.push((stored.position, event));
            }
        }
        flush(tx, run).await
    }
}

/// Who is mailed, and erasure's redaction.
async fn roster_event(tx: &mut PgConnection, stored: &StoredEvent) -> Result<(), ProjectionError> {
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
    Ok(())
}

/// One mail per recipient for each application of `run`.
async fn flush(
    tx: &mut PgConnection,
    run: Vec<(i64, AbsenceEvent)>,
) -> Result<(), ProjectionError> {
    if run.is_empty() {
        return Ok(());
    }
    let subjects: Vec<String> = run
        .iter()
        .filter_map(|(_, e)| match e {
            AbsenceEvent::AbsenceApplied { reason, .. } => Some(reason.key.clone()),
            _ => None,
        })
        .collect();
    let keys = KeySet::load(&mut *tx, subjects.iter().map(String::as_str)).await?;
    let ids: Vec<i64> = run
        .iter()
        .filter_map(|(_, e)| match e {
            AbsenceEvent::AbsenceApplied { applier, .. } => Some(*applier as i64),
            _ => None,
        })
        .collect();
    // The roster read model is caught up in the same pass, before this one.
    let names: std::collections::HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
        "SELECT id, name FROM orchestra_members WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let (mut positions, mut subjects, mut bodies, mut people) = (vec![], vec![], vec![], vec![]);
    for (position, event) in run {
        let AbsenceEvent::AbsenceApplied {
            absence_id,
            applier,
            section,
            date,
            kind,
            reason,
            applied_on,
            ..
        } = event
        else {
            continue;
        };
        let reason = keys.open_or(&reason, ERASED_TEXT);
        let name = names
            .get(&(applier as i64))
            .cloned()
            .unwrap_or_else(|| former_member(applier));
        subjects.push(format!(
            "New absence request #{absence_id}: {name}, {date} ({})",
            kind.as_str()
        ));
        bodies.push(format!(
            "{name} ({section}) asks to miss the rehearsal of {date}.\n\n\
             Type: {kind}\nReason: {reason}\nApplied on: {applied_on}\nAbsence id: {absence_id}\n",
            section = section.as_str(),
            kind = kind.as_str(),
        ));
        positions.push(position);
        people.push(member_subject(applier));
    }
    sqlx::query(
        "INSERT INTO mail_outbox (event_position, recipient, subject, body, person) \
         SELECT u.p, r.email, u.s, u.b, u.who \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(p, s, b, who) \
         CROSS JOIN mail_recipients r WHERE r.context = $5 \
         ON CONFLICT (event_position, recipient) DO NOTHING",
    )
    .bind(&positions)
    .bind(&subjects)
    .bind(&bodies)
    .bind(&people)
    .bind(CONTEXT)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
