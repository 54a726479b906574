use aggregates::orchestra::roster::{former_member, Roster, RosterEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use runtime::personal::KeySet;
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

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let stored = event;
        let Some(event) = stored.decode::<RosterEvent>(Roster::TYPE)? else {
            return Ok(());
        };
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
                sqlx::query("UPDATE orchestra_members SET section = $2, role = $3 WHERE id = $1")
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
