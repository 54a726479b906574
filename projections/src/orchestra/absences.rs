//! `orchestra_absences`: its projection, and the queries that read it (each index-backed: see
//! the migrations).

use aggregates::orchestra::absences::{AbsenceEvent, ActiveAbsence, MemberAbsences};
use aggregates::orchestra::roster::{Roster, RosterEvent};
use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use runtime::personal::{KeySet, ERASED_TEXT};
use runtime::{Projection, ProjectionError, StoredEvent};

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

    /// Consecutive events of one kind become one statement (the last decision or change of an
    /// absence within such a run is the one that counts, as it would be one by one). Reasons
    /// and results are opened with the keys that exist as of this transaction (one query per
    /// batch); a member's erasure scrubs what their absences say.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for stored in events {
            if let Some(event) = stored.decode::<AbsenceEvent>(MemberAbsences::TYPE)? {
                decoded.push(Item::Absence(event));
            } else if let Some(RosterEvent::MemberForgotten { member_id }) =
                stored.decode::<RosterEvent>(Roster::TYPE)?
            {
                decoded.push(Item::Forgotten(member_id));
            }
        }
        let subjects: Vec<String> = decoded
            .iter()
            .filter_map(|item| match item {
                Item::Absence(AbsenceEvent::AbsenceApplied { reason: s, .. })
                | Item::Absence(AbsenceEvent::AbsenceChanged { reason: s, .. })
                | Item::Absence(AbsenceEvent::AbsenceProcessed { result: s, .. }) => {
                    Some(s.key.clone())
                }
                _ => None,
            })
            .collect();
        let keys = KeySet::load(&mut *tx, subjects.iter().map(String::as_str)).await?;
        let mut run = Run::default();
        for item in decoded {
            match item {
                Item::Absence(event) => {
                    if !run.takes(&event) {
                        run.flush(tx, &keys).await?;
                    }
                    run.push(event);
                }
                Item::Forgotten(member_id) => {
                    run.flush(tx, &keys).await?;
                    // What a rebuild writes for them now that their key is gone.
                    sqlx::query(
                        "UPDATE orchestra_absences SET reason = $2, \
                         result = CASE WHEN processor_id IS NULL THEN result ELSE $2 END \
                         WHERE applier_id = $1",
                    )
                    .bind(member_id as i64)
                    .bind(ERASED_TEXT)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        run.flush(tx, &keys).await?;
        Ok(())
    }
}

enum Item {
    Absence(AbsenceEvent),
    /// A roster event: the member was erased.
    Forgotten(u64),
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

    async fn flush(&mut self, tx: &mut PgConnection, keys: &KeySet) -> Result<(), ProjectionError> {
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
                        c.members.push(*applier as i64);
                        c.sections.push(section.as_str().to_string());
                        c.texts.push(keys.open_or(reason, ERASED_TEXT));
                        c.dates.push(*date);
                        c.other_dates.push(*applied_on);
                        c.kinds.push(kind.as_str().to_string());
                    }
                }
                sqlx::query(
                    "INSERT INTO orchestra_absences (id, applier_id, section, processor_id, reason, \
                     time_absence, time_apply, result, permission, type) \
                     SELECT id, applier, section, NULL, reason, d, a, $8, false, t \
                     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::date[], \
                                 $6::date[], $7::text[]) AS u(id, applier, section, reason, d, a, t)",
                )
                .bind(&c.ids)
                .bind(&c.members)
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
                        c.texts.push(keys.open_or(reason, ERASED_TEXT));
                    }
                }
                sqlx::query(
                    "UPDATE orchestra_absences a SET time_absence = u.d, type = u.t, reason = u.r, \
                     processor_id = NULL, result = $5, permission = false \
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
                        verdict,
                    } = e
                    {
                        c.ids.push(*absence_id as i64);
                        c.members.push(*processor as i64);
                        c.texts.push(keys.open_or(result, ERASED_TEXT));
                        c.flags.push(verdict.permits());
                    }
                }
                sqlx::query(
                    "UPDATE orchestra_absences a SET processor_id = u.p, result = u.r, permission = u.ok \
                     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bool[]) AS u(id, p, r, ok) \
                     WHERE a.id = u.id",
                )
                .bind(&c.ids)
                .bind(&c.members)
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
    members: Vec<i64>,
    sections: Vec<String>,
    texts: Vec<String>,
    dates: Vec<chrono::NaiveDate>,
    other_dates: Vec<chrono::NaiveDate>,
    kinds: Vec<String>,
    flags: Vec<bool>,
}

// ---- queries -------------------------------------------------------------------------------

/// The absence JSON of the API, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": 7, "applier": "David", "processor": null, "reason": "exam",
    "time_absence": "2026-03-12", "time_apply": "2026-03-10", "result": "Not processed yet!",
    "permission": false, "type": "全体排练"}))]
pub struct AbsenceRow {
    pub id: i64,
    pub applier: String,
    pub processor: Option<String>,
    pub reason: String,
    pub time_absence: NaiveDate,
    pub time_apply: NaiveDate,
    pub result: String,
    pub permission: bool,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub section: String,
}

/// The API's JSON of an absence, from the aggregate's state (as the `orchestra_absences`
/// projection would write it), with the names of its applier and processor and its texts
/// opened.
pub fn absence_row(
    id: u64,
    absence: &ActiveAbsence,
    applier: String,
    processor: Option<String>,
    reason: String,
    result: Option<String>,
) -> AbsenceRow {
    AbsenceRow {
        id: id as i64,
        applier,
        processor,
        reason,
        time_absence: absence.date,
        time_apply: absence.applied_on,
        result: result.unwrap_or_else(|| NOT_PROCESSED.to_string()),
        permission: absence.decision.as_ref().is_some_and(|d| d.permission),
        kind: absence.kind.as_str().to_string(),
        section: absence.section.as_str().to_string(),
    }
}

/// Absences with their appliers' and processors' names: by join on member ids, so that a
/// member's erasure changes one row of `orchestra_members`.
const ABSENCE: &str = "SELECT a.id, m.name AS applier, p.name AS processor, a.reason, \
                       a.time_absence, a.time_apply, a.result, a.permission, a.type, a.section \
                       FROM orchestra_absences a \
                       JOIN orchestra_members m ON m.id = a.applier_id \
                       LEFT JOIN orchestra_members p ON p.id = a.processor_id";

/// The member id of absence `id`'s applier.
pub async fn applier_of(pool: &PgPool, id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT applier_id FROM orchestra_absences WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A member's own absences: their name is the caller's (no join for it), the processor's by an
/// index lookup per row (a join would hash the whole roster for a handful of rows).
pub async fn absences_of(
    pool: &PgPool,
    applier: i64,
    applier_name: &str,
) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(
        "SELECT a.id, $2::text AS applier, \
                (SELECT p.name FROM orchestra_members p WHERE p.id = a.processor_id) AS processor, \
                a.reason, a.time_absence, a.time_apply, a.result, a.permission, a.type, a.section \
         FROM orchestra_absences a WHERE a.applier_id = $1 ORDER BY a.time_absence, a.id",
    )
    .bind(applier)
    .bind(applier_name)
    .fetch_all(pool)
    .await
}

pub async fn all_absences(pool: &PgPool) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!("{ABSENCE} ORDER BY a.time_absence, a.id"))
        .fetch_all(pool)
        .await
}

/// Unprocessed absences dated after `today`.
pub async fn future(pool: &PgPool, today: NaiveDate) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!(
        "{ABSENCE} WHERE a.processor_id IS NULL AND a.time_absence > $1 \
         ORDER BY a.time_absence, a.id"
    ))
    .bind(today)
    .fetch_all(pool)
    .await
}

/// Processed absences dated before `today`.
pub async fn history(pool: &PgPool, today: NaiveDate) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!(
        "{ABSENCE} WHERE a.processor_id IS NOT NULL AND a.time_absence < $1 \
         ORDER BY a.time_absence, a.id"
    ))
    .bind(today)
    .fetch_all(pool)
    .await
}

/// The nearest date after `today` that anyone applied for, and its absences.
pub async fn next(
    pool: &PgPool,
    today: NaiveDate,
) -> sqlx::Result<Option<(NaiveDate, Vec<AbsenceRow>)>> {
    let date: Option<NaiveDate> = sqlx::query_scalar(
        "SELECT time_absence FROM orchestra_absences WHERE time_absence > $1 \
         ORDER BY time_absence LIMIT 1",
    )
    .bind(today)
    .fetch_optional(pool)
    .await?;
    let Some(date) = date else { return Ok(None) };
    let rows = sqlx::query_as(&format!(
        "{ABSENCE} WHERE a.time_absence = $1 ORDER BY a.id"
    ))
    .bind(date)
    .fetch_all(pool)
    .await?;
    Ok(Some((date, rows)))
}

/// Every roster member, in roster order, and whether an approved absence keeps them away.
pub async fn presence(pool: &PgPool, date: NaiveDate) -> sqlx::Result<Vec<(String, bool)>> {
    sqlx::query_as(
        "SELECT m.name, EXISTS (SELECT 1 FROM orchestra_absences a \
                                WHERE a.applier_id = m.id AND a.time_absence = $1 AND a.permission) \
         FROM orchestra_members m WHERE m.active ORDER BY m.id",
    )
    .bind(date)
    .fetch_all(pool)
    .await
}
