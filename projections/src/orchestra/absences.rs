use aggregates::orchestra::absences::{AbsenceEvent, MemberAbsences};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{Projection, ProjectionError, StoredEvent};

/// What `result` says until a manager has decided.
pub const NOT_PROCESSED: &str = "Not processed yet!";

/// `orchestra_absences`: one row per absence that has not been cancelled.
pub struct AbsenceProjection;

#[async_trait]
impl Projection for AbsenceProjection {
    fn name(&self) -> &'static str {
        "orchestra_absences"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orchestra_absences"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some(event) = event.decode::<AbsenceEvent>(MemberAbsences::TYPE)? else {
            return Ok(());
        };
        match event {
            AbsenceEvent::AbsenceApplied {
                absence_id,
                applier,
                section,
                date,
                kind,
                reason,
                applied_on,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO orchestra_absences (id, applier, section, processor, reason, \
                     time_absence, time_apply, result, permission, type) \
                     VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, false, $8)",
                )
                .bind(absence_id as i64)
                .bind(applier.as_str())
                .bind(section.as_str())
                .bind(reason)
                .bind(date)
                .bind(applied_on)
                .bind(NOT_PROCESSED)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
            }
            AbsenceEvent::AbsenceChanged {
                absence_id,
                date,
                kind,
                reason,
                ..
            } => {
                sqlx::query(
                    "UPDATE orchestra_absences SET time_absence = $2, type = $3, reason = $4, \
                     processor = NULL, result = $5, permission = false WHERE id = $1",
                )
                .bind(absence_id as i64)
                .bind(date)
                .bind(kind.as_str())
                .bind(reason)
                .bind(NOT_PROCESSED)
                .execute(&mut *tx)
                .await?;
            }
            AbsenceEvent::AbsenceCancelled { absence_id } => {
                sqlx::query("DELETE FROM orchestra_absences WHERE id = $1")
                    .bind(absence_id as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            AbsenceEvent::AbsenceProcessed {
                absence_id,
                processor,
                result,
                permission,
            } => {
                sqlx::query(
                    "UPDATE orchestra_absences SET processor = $2, result = $3, permission = $4 \
                     WHERE id = $1",
                )
                .bind(absence_id as i64)
                .bind(processor.as_str())
                .bind(result)
                .bind(permission)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }
}
