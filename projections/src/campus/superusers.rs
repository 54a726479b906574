use aggregates::campus::superusers::{Superuser, SuperuserEvent};
use async_trait::async_trait;
use sqlx::PgConnection;

use runtime::personal::{KeySet, ERASED_TEXT};
use runtime::stored::events_of;
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

    /// Event by event.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for (stored, event) in events_of::<Superuser>(events)? {
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
        }
        Ok(())
    }
}

// ---- queries -------------------------------------------------------------------------------

/// A superuser as operators see them.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct SuperuserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub active: bool,
    pub registered_at: chrono::DateTime<chrono::Utc>,
}

/// Every superuser, in the order they were registered.
pub async fn all(pool: &sqlx::PgPool) -> sqlx::Result<Vec<SuperuserRow>> {
    sqlx::query_as(
        "SELECT id, username, email, active, registered_at FROM campus_superusers \
         ORDER BY registered_at, id",
    )
    .fetch_all(pool)
    .await
}
