//! Queries on the orchestra read models: each one index-backed (see the migrations).

use aggregates::orchestra::absences::ActiveAbsence;
use aggregates::orchestra::{Role, Section};
use chrono::NaiveDate;
use projections::orchestra::NOT_PROCESSED;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: i64,
    pub name: String,
    pub section: String,
    pub role: String,
    pub openid: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
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
    pub section: String,
}

/// The API's JSON of an absence, from the aggregate's state (as the `orchestra_absences`
/// projection would write it).
pub fn absence_row(id: u64, absence: &ActiveAbsence) -> AbsenceRow {
    AbsenceRow {
        id: id as i64,
        applier: absence.applier.to_string(),
        processor: absence.decision.as_ref().map(|d| d.processor.to_string()),
        reason: absence.reason.clone(),
        time_absence: absence.date,
        time_apply: absence.applied_on,
        result: absence
            .decision
            .as_ref()
            .map_or_else(|| NOT_PROCESSED.to_string(), |d| d.result.clone()),
        permission: absence.decision.as_ref().is_some_and(|d| d.permission),
        kind: absence.kind.as_str().to_string(),
        section: absence.section.as_str().to_string(),
    }
}

const ABSENCE: &str = "SELECT id, applier, processor, reason, time_absence, time_apply, result, \
                       permission, type, section FROM orchestra_absences";

pub async fn member(pool: &PgPool, name: &str) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as("SELECT id, name, section, role, openid FROM orchestra_members WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// The member and the current season, in one statement (every request's token check; an
/// application needs the season too).
pub async fn member_and_season(
    pool: &PgPool,
    name: &str,
) -> sqlx::Result<Option<(MemberRow, u64)>> {
    let row: Option<(i64, String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT id, name, section, role, openid, \
                coalesce((SELECT season FROM orchestra_season), 0) \
         FROM orchestra_members WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, name, section, role, openid, season)| {
        (
            MemberRow {
                id,
                name,
                section,
                role,
                openid,
            },
            season as u64,
        )
    }))
}

pub async fn members(pool: &PgPool) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as("SELECT id, name, section, role, openid FROM orchestra_members ORDER BY id")
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

pub async fn absence(pool: &PgPool, id: i64) -> sqlx::Result<Option<AbsenceRow>> {
    sqlx::query_as(&format!("{ABSENCE} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn absences_of(pool: &PgPool, applier: &str) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!(
        "{ABSENCE} WHERE applier = $1 ORDER BY time_absence, id"
    ))
    .bind(applier)
    .fetch_all(pool)
    .await
}

pub async fn all_absences(pool: &PgPool) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!("{ABSENCE} ORDER BY time_absence, id"))
        .fetch_all(pool)
        .await
}

/// Unprocessed absences dated after `today`.
pub async fn future(pool: &PgPool, today: NaiveDate) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!(
        "{ABSENCE} WHERE processor IS NULL AND time_absence > $1 ORDER BY time_absence, id"
    ))
    .bind(today)
    .fetch_all(pool)
    .await
}

/// Processed absences dated before `today`.
pub async fn history(pool: &PgPool, today: NaiveDate) -> sqlx::Result<Vec<AbsenceRow>> {
    sqlx::query_as(&format!(
        "{ABSENCE} WHERE processor IS NOT NULL AND time_absence < $1 ORDER BY time_absence, id"
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
    let rows = sqlx::query_as(&format!("{ABSENCE} WHERE time_absence = $1 ORDER BY id"))
        .bind(date)
        .fetch_all(pool)
        .await?;
    Ok(Some((date, rows)))
}

/// Every roster member, in roster order, and whether an approved absence keeps them away.
pub async fn presence(pool: &PgPool, date: NaiveDate) -> sqlx::Result<Vec<(String, bool)>> {
    sqlx::query_as(
        "SELECT m.name, EXISTS (SELECT 1 FROM orchestra_absences a \
                                WHERE a.applier = m.name AND a.time_absence = $1 AND a.permission) \
         FROM orchestra_members m ORDER BY m.id",
    )
    .bind(date)
    .fetch_all(pool)
    .await
}
