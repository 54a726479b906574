//! The roster's read model (`orchestra_members`, `orchestra_binding_requests`,
//! `orchestra_notify_addresses`, `orchestra_season`): its projection, and the queries that read
//! it.

use aggregates::orchestra::roster::{former_member, Roster, RosterEvent};
use aggregates::orchestra::{Role, Section};
use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};

use runtime::personal::KeySet;
use runtime::stored::events_of;
use runtime::{Projection, ProjectionError, StoredEvent};

/// `orchestra_members`, `orchestra_binding_requests`, `orchestra_notify_addresses`,
/// `orchestra_season`.
pub struct RosterProjection;

#[async_trait]
impl Projection for RosterProjection {
    fn name(&self) -> &'static str {
        "orchestra_roster"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "orchestra_members",
            "orchestra_binding_requests",
            "orchestra_notify_addresses",
            "orchestra_season",
        ]
    }

    /// Event by event.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for (stored, event) in events_of::<Roster>(events)? {
            let request = stored
                .metadata
                .get("request_id")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_string();
            match event {
                RosterEvent::MemberEnrolled {
                    member_id,
                    name,
                    section,
                    role,
                } => {
                    let keys = KeySet::load(&mut *tx, [name.key.as_str()]).await?;
                    sqlx::query(
                        "INSERT INTO orchestra_members (id, name, section, role, active) \
                         VALUES ($1, $2, $3, $4, true)",
                    )
                    .bind(member_id as i64)
                    // The placeholder when the member was erased since (their MemberForgotten
                    // follows in the log and says the rest).
                    .bind(keys.open_or(&name, &former_member(member_id)))
                    .bind(section.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                RosterEvent::MemberReassigned {
                    member_id,
                    section,
                    role,
                } => {
                    sqlx::query(
                        "UPDATE orchestra_members SET section = $2, role = $3 WHERE id = $1",
                    )
                    .bind(member_id as i64)
                    .bind(section.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                RosterEvent::WechatBound {
                    member_id, binding, ..
                } => {
                    sqlx::query(
                        "UPDATE orchestra_members SET binding = $2, bound_at = $3, bound_request = $4 \
                         WHERE id = $1",
                    )
                    .bind(member_id as i64)
                    .bind(binding as i64)
                    .bind(stored.recorded_at)
                    .bind(&request)
                    .execute(&mut *tx)
                    .await?;
                    requests_answered(tx, member_id).await?;
                }
                RosterEvent::WechatBindingRequested { member_id, .. } => {
                    sqlx::query(
                        "INSERT INTO orchestra_binding_requests (member_id, request_id, requested_at) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(member_id as i64)
                    .bind(&request)
                    .bind(stored.recorded_at)
                    .execute(&mut *tx)
                    .await?;
                }
                RosterEvent::WechatUnbound { member_id } => {
                    sqlx::query(
                        "UPDATE orchestra_members SET binding = NULL, bound_at = NULL, \
                         bound_request = NULL WHERE id = $1",
                    )
                    .bind(member_id as i64)
                    .execute(&mut *tx)
                    .await?;
                    requests_answered(tx, member_id).await?;
                }
                RosterEvent::MemberForgotten { member_id } => {
                    sqlx::query(
                        "UPDATE orchestra_members SET name = $2, binding = NULL, active = false, \
                         bound_at = NULL, bound_request = NULL WHERE id = $1",
                    )
                    .bind(member_id as i64)
                    .bind(former_member(member_id))
                    .execute(&mut *tx)
                    .await?;
                    requests_answered(tx, member_id).await?;
                }
                RosterEvent::NotifyAddressAdded { email } => {
                    sqlx::query("INSERT INTO orchestra_notify_addresses (email) VALUES ($1)")
                        .bind(email.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                RosterEvent::NotifyAddressRemoved { email } => {
                    sqlx::query("DELETE FROM orchestra_notify_addresses WHERE email = $1")
                        .bind(email.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                RosterEvent::SeasonStarted { season } => {
                    sqlx::query(
                        "INSERT INTO orchestra_season (singleton, season) VALUES (true, $1) \
                         ON CONFLICT (singleton) DO UPDATE SET season = EXCLUDED.season",
                    )
                    .bind(season as i64)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// A member's requests to be bound are answered (a binding, an unbinding, an erasure).
async fn requests_answered(tx: &mut PgConnection, member_id: u64) -> Result<(), ProjectionError> {
    sqlx::query("DELETE FROM orchestra_binding_requests WHERE member_id = $1")
        .bind(member_id as i64)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

// ---- queries -------------------------------------------------------------------------------

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
/// season (an application needs it), the member's key as it is now (a write seals with it;
/// None once erased, even before this read model knows), and the state of the read models (a
/// read's answer may be one kept from an earlier read on the same state).
pub struct MemberNow {
    pub member: MemberRow,
    pub season: u64,
    pub key: Option<Vec<u8>>,
    pub at: runtime::answers::ReadModels,
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
        i64,
        i64,
        i64,
        i64,
    );
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT id, name, section, role, binding, \
                    coalesce((SELECT season FROM orchestra_season), 0), \
                    (SELECT key FROM personal_keys WHERE subject = $2), {} \
             FROM orchestra_members WHERE id = $1 AND active",
            runtime::answers::READ_MODELS
        )
    });
    let row: Option<Row> = sqlx::query_as(&SQL)
        .bind(id)
        .bind(aggregates::orchestra::roster::member_subject(id as u64))
        .fetch_optional(pool)
        .await?;
    Ok(row.map(
        |(
            id,
            name,
            section,
            role,
            binding,
            season,
            key,
            transactions,
            positions,
            rebuilds,
            erasures,
        )| {
            MemberNow {
                member: MemberRow {
                    id,
                    name,
                    section,
                    role,
                    binding,
                },
                season: season as u64,
                key,
                at: runtime::answers::ReadModels::new((
                    transactions,
                    positions,
                    rebuilds,
                    erasures,
                )),
            }
        },
    ))
}

/// A manager bound to a WeChat account (the lowest id), with the binding: (id, binding).
pub async fn a_bound_manager(pool: &PgPool) -> sqlx::Result<Option<(i64, i64)>> {
    sqlx::query_as(
        "SELECT id, binding FROM orchestra_members \
         WHERE active AND role = 'manager' AND binding IS NOT NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
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
