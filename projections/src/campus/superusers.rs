use aggregates::campus::superusers::{Superuser, SuperuserEvent};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use runtime::personal::{KeySet, ERASED_TEXT};
use runtime::{Projection, ProjectionError, StoredEvent};

/// `campus_superusers`.
pub struct SuperuserProjection;

#[async_trait]
impl Projection for SuperuserProjection {
    fn name(&self) -> &'static str {
        "campus_superusers"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campus_superusers"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        stored: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some(event) = stored.decode::<SuperuserEvent>(Superuser::TYPE)? else {
            return Ok(());
        };
        match event {
            SuperuserEvent::SuperuserRegistered {
                superuser_id,
                username,
                email,
                ..
            } => {
                let keys = KeySet::load(&mut *tx, [username.key.as_str()]).await?;
                sqlx::query(
                    "INSERT INTO campus_superusers (id, username, email, active, registered_at) \
                     VALUES ($1, $2, $3, true, $4)",
                )
                .bind(&superuser_id)
                .bind(keys.open_or(&username, ERASED_TEXT))
                .bind(keys.open_or(&email, ERASED_TEXT))
                .bind(stored.recorded_at)
                .execute(&mut *tx)
                .await?;
            }
            SuperuserEvent::SuperuserDisabled { superuser_id } => {
                sqlx::query("UPDATE campus_superusers SET active = false WHERE id = $1")
                    .bind(&superuser_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}
