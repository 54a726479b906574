//! Queries on the orchestra read models: each one index-backed (see the migrations).

use aggregates::orchestra::absences::ActiveAbsence;
use aggregates::orchestra::{Role, Section};
use chrono::NaiveDate;
use projections::orchestra::NOT_PROCESSED;
use serde::Serialize;
use sqlx::PgPool;

/// An active member (an erased one is never returned).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: i64,
    pub name: String,
    pub section: String,
    pub role: String,
    pub binding: Option<i64>,
}

impl MemberRow {
    pub fn section(&self) -> Section {
        Section::parse(&self.section).expect("the table's CHECK allows only sections")
    }

    pub fn role(&self) -> Role {
        Role::parse(&self.role).expect("the table's CHECK allows only roles")
    }
}

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

/// The active member whose name is reserved as `blind` (the login's lookup: by keyed hash,
/// never by name).
pub async fn member_by_name(
    pool: &PgPool,
    blind: aggregates::personal::Blind,
) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as(
        "SELECT m.id, m.name, m.section, m.role, m.binding FROM reservations r \
         JOIN orchestra_members m ON m.id = split_part(r.owner, ':', 2)::bigint \
         WHERE r.scope = $1 AND r.blind = $2 AND r.owner LIKE 'orchestra-member:%' AND m.active",
    )
    .bind(aggregates::orchestra::roster::NAME_SCOPE)
    .bind(blind.0.as_slice())
    .fetch_optional(pool)
    .await
}

/// A member's name (an erased one's placeholder; None if never enrolled) and key (None once
/// erased), in one statement.
pub async fn name_and_key(
    pool: &PgPool,
    id: i64,
) -> sqlx::Result<(Option<String>, Option<runtime::personal::Key>)> {
    let (name, key): (Option<String>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT (SELECT name FROM orchestra_members WHERE id = $1), \
                (SELECT key FROM personal_keys WHERE subject = $2)",
    )
    .bind(id)
    .bind(aggregates::orchestra::roster::member_subject(id as u64))
    .fetch_one(pool)
    .await?;
    Ok((
        name,
        key.and_then(|k| runtime::personal::Key::try_from(k.as_slice()).ok()),
    ))
}

/// A member's name (an erased one's placeholder), if the id was ever enrolled.
pub async fn member_name(pool: &PgPool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM orchestra_members WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// What every request's token check reads, in one statement: the active member, the current
/// season (an application needs it) and the member's key as it is now (a write seals with it;
/// None once erased, even before this read model knows).
pub struct MemberNow {
    pub member: MemberRow,
    pub season: u64,
    pub key: Option<Vec<u8>>,
}

pub async fn member_now(pool: &PgPool, id: i64) -> sqlx::Result<Option<MemberNow>> {
    type Row = (
        i64,
        String,
        String,
        String,
        Option<i64>,
        i64,
        Option<Vec<u8>>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, section, role, binding, \
                coalesce((SELECT season FROM orchestra_season), 0), \
                (SELECT key FROM personal_keys WHERE subject = $2) \
         FROM orchestra_members WHERE id = $1 AND active",
    )
    .bind(id)
    .bind(aggregates::orchestra::roster::member_subject(id as u64))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(id, name, section, role, binding, season, key)| MemberNow {
            member: MemberRow {
                id,
                name,
                section,
                role,
                binding,
            },
            season: season as u64,
            key,
        },
    ))
}

/// A member as operators see them: with their WeChat binding (when and through which
/// request it was made).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RosterRow {
    pub id: i64,
    pub name: String,
    pub section: String,
    pub role: String,
    pub binding: Option<i64>,
    pub bound_at: Option<chrono::DateTime<chrono::Utc>>,
    pub bound_request: Option<String>,
}

pub async fn members(pool: &PgPool) -> sqlx::Result<Vec<RosterRow>> {
    sqlx::query_as(
        "SELECT id, name, section, role, binding, bound_at, bound_request \
         FROM orchestra_members WHERE active ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// The requests to be bound that wait for approval: (member id, request id, when), oldest
/// first.
pub async fn binding_requests(
    pool: &PgPool,
) -> sqlx::Result<Vec<(i64, String, chrono::DateTime<chrono::Utc>)>> {
    sqlx::query_as(
        "SELECT member_id, request_id, requested_at FROM orchestra_binding_requests \
         ORDER BY member_id, requested_at",
    )
    .fetch_all(pool)
    .await
}

pub async fn notify_addresses(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT email FROM orchestra_notify_addresses ORDER BY email")
        .fetch_all(pool)
        .await
}

/// The current season: 0 until an operator starts the first one.
pub async fn season(pool: &PgPool) -> sqlx::Result<u64> {
    let season: Option<i64> = sqlx::query_scalar("SELECT season FROM orchestra_season")
        .fetch_optional(pool)
        .await?;
    Ok(season.unwrap_or(0) as u64)
}

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
