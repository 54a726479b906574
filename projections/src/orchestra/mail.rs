use aggregates::campus::users::{user_subject, CampusUser, UserEvent};
use aggregates::orchestra::absences::{AbsenceEvent, MemberAbsences};
use aggregates::orchestra::roster::{former_member, member_subject, Roster, RosterEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use runtime::personal::{KeySet, ERASED_TEXT};
use runtime::{Projection, ProjectionError, StoredEvent};

const CONTEXT: &str = "orchestra";

/// Turns each new absence, each WeChat binding and each manager's request to be bound into
/// one `mail_outbox` row per notification address as of that event; the mail worker delivers them. Never rebuilt, so nothing is ever mailed twice; its
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

    /// Roster events in order; each run of applications between them becomes one insert, with
    /// the keys and the names it needs read once.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut run: Vec<(i64, AbsenceEvent)> = Vec::new();
        for stored in events {
            if stored.aggregate_type == Roster::TYPE {
                flush(tx, std::mem::take(&mut run)).await?;
                roster_event(tx, stored).await?;
            } else if stored.aggregate_type == CampusUser::TYPE {
                flush(tx, std::mem::take(&mut run)).await?;
                campus_user_event(tx, stored).await?;
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
            RosterEvent::WechatBound { member_id, .. } => {
                let request = request_of(stored);
                let at = stored.recorded_at.format("%Y-%m-%d %H:%M:%S UTC");
                let name = member_name(tx, member_id).await?;
                notify(
                    tx,
                    stored.position,
                    member_id,
                    format!("{name} was bound to a WeChat account"),
                    format!(
                        "{name} was bound to a WeChat account at {at} from request {request}.\n\n\
                         From now on only that account logs in as {name}. If this was not \
                         {name}, an operator runs `ensemble roster unbind {name}` (their \
                         tokens stop working at once) and {name} logs in again.\n"
                    ),
                )
                .await?;
            }
            RosterEvent::WechatBindingRequested { member_id, .. } => {
                let request = request_of(stored);
                let at = stored.recorded_at.format("%Y-%m-%d %H:%M:%S UTC");
                let name = member_name(tx, member_id).await?;
                notify(
                    tx,
                    stored.position,
                    member_id,
                    format!("{name} asks to be bound to a WeChat account"),
                    format!(
                        "A WeChat account logged in as the manager {name} for the first time at \
                         {at}, from request {request}. It waits for an operator.\n\n\
                         If {name} confirms it was them (at that time), an operator runs \
                         `ensemble roster approve {name} --request {request}`; `ensemble roster \
                         unbind {name}` drops every request that waits. Another account trying \
                         the name is recorded as a request of its own, and mailed likewise.\n"
                    ),
                )
                .await?;
            }
            RosterEvent::MemberForgotten { member_id } => {
                // The office's mails about them: the recipients are the office's.
                redact(
                    tx,
                    &member_subject(member_id),
                    &format!("Mail about {}", former_member(member_id)),
                    "The member this mail was about has been erased.\n",
                    false,
                )
                .await?;
            }
            _ => {}
        }
        return Ok(());
    }
    Ok(())
}

/// The request an event came from (its metadata's request id).
fn request_of(stored: &StoredEvent) -> String {
    stored
        .metadata
        .get("request_id")
        .and_then(|r| r.as_str())
        .unwrap_or("(none)")
        .to_string()
}

/// A member's name as the roster read model has it (caught up in the same pass, before this
/// projection), or their placeholder.
async fn member_name(tx: &mut PgConnection, member_id: u64) -> Result<String, ProjectionError> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM orchestra_members WHERE id = $1")
            .bind(member_id as i64)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(name.unwrap_or_else(|| former_member(member_id)))
}

/// One mail per notification address about member `member_id` (redacted with them).
async fn notify(
    tx: &mut PgConnection,
    position: i64,
    member_id: u64,
    subject: String,
    body: String,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO mail_outbox (event_position, recipient, subject, body, person) \
         SELECT $1, r.email, $2, $3, $4 FROM mail_recipients r WHERE r.context = $5 \
         ON CONFLICT (event_position, recipient) DO NOTHING",
    )
    .bind(position)
    .bind(subject)
    .bind(body)
    .bind(member_subject(member_id))
    .bind(CONTEXT)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The campus's verification codes, mailed to the address being verified; a deleted user's
/// mails are redacted (and set aside if not sent yet).
async fn campus_user_event(
    tx: &mut PgConnection,
    stored: &StoredEvent,
) -> Result<(), ProjectionError> {
    match stored.decode::<UserEvent>(CampusUser::TYPE)? {
        Some(UserEvent::VerificationCodeIssued {
            user_id,
            email,
            code,
            expires_at,
        }) => {
            let keys = KeySet::load(&mut *tx, [email.key.as_str()]).await?;
            let (Some(email), Some(code)) = (keys.open(&email), keys.open(&code)) else {
                return Ok(());
            };
            sqlx::query(
                "INSERT INTO mail_outbox (event_position, recipient, subject, body, person) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_position, recipient) DO NOTHING",
            )
            .bind(stored.position)
            .bind(email)
            .bind(format!("您的验证码 / Your verification code: {code}"))
            .bind(format!(
                "您的邮箱验证码是 {code}，{minutes} 分钟内有效。\n\
                 Your verification code is {code}; it is valid for {minutes} minutes \
                 (until {expires_at} UTC).\n\n\
                 如果不是您本人操作，请忽略此邮件。 If you did not ask for it, ignore this mail.\n",
                minutes = aggregates::campus::users::CODE_VALIDITY.num_minutes(),
                expires_at = expires_at.format("%Y-%m-%d %H:%M"),
            ))
            .bind(user_subject(user_id))
            .execute(&mut *tx)
            .await?;
        }
        Some(UserEvent::UserDeleted { user_id }) => {
            // Mails to them: their address is the recipient.
            redact(
                tx,
                &user_subject(user_id),
                "Verification code",
                "The user this mail was for has been erased.\n",
                true,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// An erased person's mails, sent or not, keep no trace of them (those not yet sent are set
/// aside); with `their_address`, the recipient is theirs and goes too, with the throttle's
/// hash of it. Answers kept for safe retries that were stored while the erasure was
/// committing go (the erasure's own statement emptied the rest).
async fn redact(
    tx: &mut PgConnection,
    person: &str,
    subject: &str,
    body: &str,
    their_address: bool,
) -> Result<(), ProjectionError> {
    if their_address {
        sqlx::query(
            "DELETE FROM mail_throttle WHERE recipient_hash IN ( \
                 SELECT encode(sha256(convert_to(recipient, 'UTF8')), 'hex') \
                 FROM mail_outbox WHERE person = $1)",
        )
        .bind(person)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE mail_outbox SET subject = $2, body = $3, \
         recipient = CASE WHEN $4 THEN 'erased-' || id ELSE recipient END, \
         failed_at = CASE WHEN sent_at IS NULL THEN coalesce(failed_at, now()) END, \
         last_error = CASE WHEN sent_at IS NULL THEN 'erased' ELSE last_error END \
         WHERE person = $1",
    )
    .bind(person)
    .bind(subject)
    .bind(body)
    .bind(their_address)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE names_others OR subject = $1")
        .bind(person)
        .execute(&mut *tx)
        .await?;
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
