use aggregates::orchestra::roster::RosterEvent;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{Projection, ProjectionError, StoredEvent};

/// `orchestra_members`, `orchestra_notify_addresses`, `orchestra_season`.
pub struct RosterProjection;

#[async_trait]
impl Projection for RosterProjection {
    fn name(&self) -> &'static str {
        "orchestra_roster"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "orchestra_members",
            "orchestra_notify_addresses",
            "orchestra_season",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some(event) =
            event.decode::<RosterEvent>(aggregates::orchestra::roster::Roster::TYPE)?
        else {
            return Ok(());
        };
        match event {
            RosterEvent::MemberEnrolled {
                member_id,
                name,
                section,
                role,
            } => {
                sqlx::query(
                    "INSERT INTO orchestra_members (id, name, section, role) VALUES ($1, $2, $3, $4)",
                )
                .bind(member_id as i64)
                .bind(name.as_str())
                .bind(section.as_str())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            }
            RosterEvent::MemberReassigned {
                name,
                section,
                role,
            } => {
                sqlx::query("UPDATE orchestra_members SET section = $2, role = $3 WHERE name = $1")
                    .bind(name.as_str())
                    .bind(section.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            RosterEvent::WechatBound { name, openid } => {
                sqlx::query("UPDATE orchestra_members SET openid = $2 WHERE name = $1")
                    .bind(name.as_str())
                    .bind(openid)
                    .execute(&mut *tx)
                    .await?;
            }
            RosterEvent::WechatUnbound { name } => {
                sqlx::query("UPDATE orchestra_members SET openid = NULL WHERE name = $1")
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
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
