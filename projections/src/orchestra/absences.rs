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
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    /// Consecutive events of one kind become one statement (the last decision or change of an
    /// absence within such a run is the one that counts, as it would be one by one).
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut run = Run::default();
        for stored in events {
            let Some(event) = stored.decode::<AbsenceEvent>(MemberAbsences::TYPE)? else {
                continue;
            };
            if !run.takes(&event) {
                run.flush(tx).await?;
            }
            run.push(event);
        }
        run.flush(tx).await?;
        Ok(())
    }
}

/// Events of one kind, in order, waiting to be written together.
#[derive(Default)]
struct Run {
    events: Vec<AbsenceEvent>,
}

impl Run {
    fn takes(&self, event: &AbsenceEvent) -> bool {
        self.events
            .first()
            .is_none_or(|first| std::mem::discriminant(first) == std::mem::discriminant(event))
    }

    fn push(&mut self, event: AbsenceEvent) {
        self.events.push(event);
    }

    /// Only the last event of each absence in the run (for overwrites).
    fn last_per_absence(events: &[AbsenceEvent]) -> Vec<&AbsenceEvent> {
        let id = |e: &AbsenceEvent| match e {
            AbsenceEvent::AbsenceApplied { absence_id, .. }
            | AbsenceEvent::AbsenceChanged { absence_id, .. }
            | AbsenceEvent::AbsenceCancelled { absence_id }
            | AbsenceEvent::AbsenceProcessed { absence_id, .. } => *absence_id,
        };
        let mut seen = std::collections::HashSet::new();
        let mut last: Vec<&AbsenceEvent> =
            events.iter().rev().filter(|e| seen.insert(id(e))).collect();
        last.reverse();
        last
    }

    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        let events = std::mem::take(&mut self.events);
        let Some(first) = events.first() else {
            return Ok(());
        };
        match first {
            AbsenceEvent::AbsenceApplied { .. } => {
                let mut c = Columns::default();
                for e in &events {
                    if let AbsenceEvent::AbsenceApplied {
                        absence_id,
                        applier,
                        section,
                        date,
                        kind,
                        reason,
                        applied_on,
                        ..
                    } = e
                    {
                        c.ids.push(*absence_id as i64);
                        c.names.push(applier.as_str().to_string());
                        c.sections.push(section.as_str().to_string());
                        c.texts.push(reason.clone());
                        c.dates.push(*date);
                        c.other_dates.push(*applied_on);
                        c.kinds.push(kind.as_str().to_string());
                    }
                }
                sqlx::query(
                    "INSERT INTO orchestra_absences (id, applier, section, processor, reason, \
                     time_absence, time_apply, result, permission, type) \
                     SELECT id, applier, section, NULL, reason, d, a, $8, false, t \
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::date[], \
                                 $6::date[], $7::text[]) AS u(id, applier, section, reason, d, a, t)",
                )
                .bind(&c.ids)
                .bind(&c.names)
                .bind(&c.sections)
                .bind(&c.texts)
                .bind(&c.dates)
                .bind(&c.other_dates)
                .bind(&c.kinds)
                .bind(NOT_PROCESSED)
                .execute(&mut *tx)
                .await?;
            }
            AbsenceEvent::AbsenceChanged { .. } => {
                let mut c = Columns::default();
                for e in Self::last_per_absence(&events) {
                    if let AbsenceEvent::AbsenceChanged {
                        absence_id,
                        date,
                        kind,
                        reason,
                        ..
                    } = e
                    {
                        c.ids.push(*absence_id as i64);
                        c.dates.push(*date);
                        c.kinds.push(kind.as_str().to_string());
                        c.texts.push(reason.clone());
                    }
                }
                sqlx::query(
                    "UPDATE orchestra_absences a SET time_absence = u.d, type = u.t, reason = u.r, \
                     processor = NULL, result = $5, permission = false \
                     FROM unnest($1::bigint[], $2::date[], $3::text[], $4::text[]) AS u(id, d, t, r) \
                     WHERE a.id = u.id",
                )
                .bind(&c.ids)
                .bind(&c.dates)
                .bind(&c.kinds)
                .bind(&c.texts)
                .bind(NOT_PROCESSED)
                .execute(&mut *tx)
                .await?;
            }
            AbsenceEvent::AbsenceCancelled { .. } => {
                let ids: Vec<i64> = events
                    .iter()
                    .filter_map(|e| match e {
                        AbsenceEvent::AbsenceCancelled { absence_id } => Some(*absence_id as i64),
                        _ => None,
                    })
                    .collect();
                sqlx::query("DELETE FROM orchestra_absences WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
            }
            AbsenceEvent::AbsenceProcessed { .. } => {
                let mut c = Columns::default();
                for e in Self::last_per_absence(&events) {
                    if let AbsenceEvent::AbsenceProcessed {
                        absence_id,
                        processor,
                        result,
                        permission,
                    } = e
                    {
                        c.ids.push(*absence_id as i64);
                        c.names.push(processor.as_str().to_string());
                        c.texts.push(result.clone());
                        c.flags.push(*permission);
                    }
                }
                sqlx::query(
                    "UPDATE orchestra_absences a SET processor = u.p, result = u.r, permission = u.ok \
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[]) AS u(id, p, r, ok) \
                     WHERE a.id = u.id",
                )
                .bind(&c.ids)
                .bind(&c.names)
                .bind(&c.texts)
                .bind(&c.flags)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }
}

/// Column arrays for one set-based statement.
#[derive(Default)]
struct Columns {
    ids: Vec<i64>,
    names: Vec<String>,
    sections: Vec<String>,
    texts: Vec<String>,
    dates: Vec<chrono::NaiveDate>,
    other_dates: Vec<chrono::NaiveDate>,
    kinds: Vec<String>,
    flags: Vec<bool>,
}
