use aggregates::campus::catalog::{
    Addresses, Blocks, Catalog, CatalogEvent, Categories, Entry, EntryEvent,
};
use aggregates::campus::feedback::{Feedback, FeedbackEvent};
use aggregates::campus::organizations::{Organization, OrganizationEvent};
use aggregates::campus::users::{CampusUser, UserEvent, ERASED_USER};
use aggregates::personal::Sealed;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use runtime::personal::{KeySet, ERASED_TEXT};
use runtime::{Projection, ProjectionError, StoredEvent};

/// Every campus table but the superusers': users, catalogues, applications, organisations,
/// appointments, follows and feedback. One projection, so that a user's or an organisation's
/// deletion reaches every row that names them in the same transaction. Users' personal
/// fields are opened with their keys; nested users and blocks are joined at read time, so a
/// profile edit shows everywhere at once.
pub struct CampusProjection;

const TABLES: &[&str] = &[
    "campus_users",
    "campus_blocks",
    "campus_categories",
    "campus_addresses",
    "campus_applications",
    "campus_organizations",
    "campus_managers",
    "campus_follows",
    "campus_feedbacks",
];

#[async_trait]
impl Projection for CampusProjection {
    fn name(&self) -> &'static str {
        "campus"
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    /// The keys every event of the batch needs, read in one statement (in this transaction,
    /// as `apply` would read them one by one: the same rows), then each event in turn.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut subjects = std::collections::BTreeSet::new();
        for stored in events {
            if SEALING.contains(&stored.aggregate_type.as_str()) {
                runtime::personal::sealed_subjects(&stored.payload, &mut subjects);
            }
        }
        let keys = KeySet::load(&mut *tx, subjects.iter().map(String::as_str)).await?;
        for stored in events {
            apply_one(tx, stored, &keys).await?;
        }
        Ok(())
    }
}

/// The campus aggregates whose events carry sealed values.
const SEALING: &[&str] = &[CampusUser::TYPE, Organization::TYPE, Feedback::TYPE];

async fn apply_one(
    tx: &mut PgConnection,
    stored: &StoredEvent,
    keys: &KeySet,
) -> Result<(), ProjectionError> {
    if let Some(event) = stored.decode::<UserEvent>(CampusUser::TYPE)? {
        return user(tx, stored, event, keys).await;
    }
    if let Some(event) = stored.decode::<OrganizationEvent>(Organization::TYPE)? {
        return organization(tx, event, keys).await;
    }
    if let Some(event) = stored.decode::<EntryEvent<Blocks>>(Entry::<Blocks>::TYPE)? {
        return catalog::<Blocks>(tx, event.event).await;
    }
    if let Some(event) = stored.decode::<EntryEvent<Categories>>(Entry::<Categories>::TYPE)? {
        return catalog::<Categories>(tx, event.event).await;
    }
    if let Some(event) = stored.decode::<EntryEvent<Addresses>>(Entry::<Addresses>::TYPE)? {
        return catalog::<Addresses>(tx, event.event).await;
    }
    if let Some(FeedbackEvent::FeedbackSubmitted {
        feedback_id,
        user_id,
        feedback,
        contact,
    }) = stored.decode::<FeedbackEvent>(Feedback::TYPE)?
    {
        sqlx::query(
            "INSERT INTO campus_feedbacks (id, user_id, feedback, contact, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(feedback_id as i64)
        .bind(user_id as i64)
        .bind(keys.open_or(&feedback, ERASED_TEXT))
        .bind(keys.open_or(&contact, ERASED_TEXT))
        .bind(stored.recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn user(
    tx: &mut PgConnection,
    stored: &StoredEvent,
    event: UserEvent,
    keys: &KeySet,
) -> Result<(), ProjectionError> {
    let open = |keys: &KeySet, sealed: &Option<Sealed>| sealed.as_ref().and_then(|s| keys.open(s));
    match event {
        UserEvent::UserRegistered {
            user_id,
            openid,
            name,
            avatar,
        } => {
            // An erased user's registration, replayed, gives the placeholder row directly.
            let erased = keys.open(&name).is_none();
            sqlx::query(
                "INSERT INTO campus_users (id, openid, name, avatar, deleted, registered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(user_id as i64)
            .bind(keys.open(&openid))
            .bind(keys.open_or(&name, ERASED_USER))
            .bind(open(keys, &avatar))
            .bind(erased)
            .bind(stored.recorded_at)
            .execute(&mut *tx)
            .await?;
        }
        UserEvent::ProfileEdited {
            user_id,
            name,
            sign,
        } => {
            if keys.open(&name).is_some() {
                sqlx::query(
                    "UPDATE campus_users SET name = $2, sign = CASE WHEN $3 THEN $4 ELSE sign END \
                     WHERE id = $1 AND NOT deleted",
                )
                .bind(user_id as i64)
                .bind(keys.open(&name))
                .bind(sign.is_some())
                .bind(open(keys, &sign))
                .execute(&mut *tx)
                .await?;
            }
        }
        UserEvent::EmailVerified { user_id, email } => {
            sqlx::query("UPDATE campus_users SET email = $2 WHERE id = $1 AND NOT deleted")
                .bind(user_id as i64)
                .bind(keys.open(&email))
                .execute(&mut *tx)
                .await?;
        }
        UserEvent::FollowStarted {
            user_id,
            follow_id,
            organization_id,
        } => {
            // A follow of an organisation deleted meanwhile is not shown.
            sqlx::query(
                "INSERT INTO campus_follows (id, org_id, user_id) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT FROM campus_organizations WHERE id = $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(follow_id as i64)
            .bind(organization_id as i64)
            .bind(user_id as i64)
            .execute(&mut *tx)
            .await?;
        }
        UserEvent::FollowEnded { follow_id, .. } => {
            sqlx::query("DELETE FROM campus_follows WHERE id = $1")
                .bind(follow_id as i64)
                .execute(&mut *tx)
                .await?;
        }
        UserEvent::UserDeleted { user_id } => {
            let id = user_id as i64;
            sqlx::query(
                "UPDATE campus_users SET name = $2, openid = NULL, avatar = NULL, email = NULL, \
                 sign = NULL, deleted = true WHERE id = $1",
            )
            .bind(id)
            .bind(ERASED_USER)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM campus_follows WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM campus_managers WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE campus_feedbacks SET feedback = $2, contact = $2 WHERE user_id = $1",
            )
            .bind(id)
            .bind(ERASED_TEXT)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE campus_applications SET description = $2 WHERE user_id = $1")
                .bind(id)
                .bind(ERASED_TEXT)
                .execute(&mut *tx)
                .await?;
        }
        UserEvent::VerificationCodeIssued { .. } | UserEvent::VerificationFailed { .. } => {}
    }
    Ok(())
}

async fn organization(
    tx: &mut PgConnection,
    event: OrganizationEvent,
    keys: &KeySet,
) -> Result<(), ProjectionError> {
    use OrganizationEvent as E;
    match event {
        E::ApplicationSubmitted {
            application_id,
            name,
            description,
            applicant,
            block,
            submitted_at,
            ..
        } => {
            sqlx::query(
                "INSERT INTO campus_applications (id, name, description, pub_time, status, user_id, block_id) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(application_id as i64)
            .bind(name)
            .bind(keys.open_or(&description, ERASED_TEXT))
            .bind(submitted_at)
            .bind(applicant as i64)
            .bind(block as i64)
            .execute(&mut *tx)
            .await?;
        }
        E::ApplicationApproved {
            application_id,
            organization_id,
            name,
            description,
            owner,
            block,
            appointment_id,
            founded_at,
        } => {
            sqlx::query("UPDATE campus_applications SET status = 1 WHERE id = $1")
                .bind(application_id as i64)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO campus_organizations (id, application_id, name, description, create_time, owner_id, block_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(organization_id as i64)
            .bind(application_id as i64)
            .bind(name)
            .bind(description)
            .bind(founded_at)
            .bind(owner as i64)
            .bind(block as i64)
            .execute(&mut *tx)
            .await?;
            appoint(tx, appointment_id, organization_id, owner).await?;
        }
        E::ApplicationRefused { application_id } => {
            sqlx::query("UPDATE campus_applications SET status = 2 WHERE id = $1")
                .bind(application_id as i64)
                .execute(&mut *tx)
                .await?;
        }
        E::ApplicationDeleted { application_id, .. } => {
            sqlx::query("UPDATE campus_applications SET deleted = true WHERE id = $1")
                .bind(application_id as i64)
                .execute(&mut *tx)
                .await?;
        }
        E::OrganizationEdited {
            organization_id,
            name,
            description,
            avatar,
            ..
        } => {
            sqlx::query(
                "UPDATE campus_organizations SET name = $2, description = $3, avatar = $4 WHERE id = $1",
            )
            .bind(organization_id as i64)
            .bind(name)
            .bind(description)
            .bind(avatar)
            .execute(&mut *tx)
            .await?;
        }
        E::OwnershipTransferred {
            organization_id,
            to,
            appointment_id,
            ..
        } => {
            sqlx::query("UPDATE campus_organizations SET owner_id = $2 WHERE id = $1")
                .bind(organization_id as i64)
                .bind(to as i64)
                .execute(&mut *tx)
                .await?;
            if let Some(appointment_id) = appointment_id {
                appoint(tx, appointment_id, organization_id, to).await?;
            }
        }
        E::ManagerAppointed {
            organization_id,
            appointment_id,
            user,
        } => appoint(tx, appointment_id, organization_id, user).await?,
        E::ManagerDismissed { appointment_id, .. } => {
            sqlx::query("DELETE FROM campus_managers WHERE id = $1")
                .bind(appointment_id as i64)
                .execute(&mut *tx)
                .await?;
        }
        E::OrganizationDeleted {
            organization_id, ..
        } => {
            let id = organization_id as i64;
            for sql in [
                "DELETE FROM campus_managers WHERE org_id = $1",
                "DELETE FROM campus_follows WHERE org_id = $1",
                "DELETE FROM campus_organizations WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
    }
    Ok(())
}

/// An appointment, unless its user was deleted meanwhile (their rows are gone for good).
async fn appoint(
    tx: &mut PgConnection,
    appointment_id: u64,
    organization_id: u64,
    user: u64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO campus_managers (id, org_id, user_id) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT FROM campus_users WHERE id = $3 AND NOT deleted) \
         ON CONFLICT DO NOTHING",
    )
    .bind(appointment_id as i64)
    .bind(organization_id as i64)
    .bind(user as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn catalog<K: Catalog>(
    tx: &mut PgConnection,
    event: CatalogEvent,
) -> Result<(), ProjectionError> {
    let table = match K::TYPE {
        t if t == Blocks::TYPE => "campus_blocks",
        t if t == Categories::TYPE => "campus_categories",
        _ => "campus_addresses",
    };
    match event {
        CatalogEvent::Created {
            id, name, place, ..
        } => {
            let query = match place {
                Some(place) => sqlx::query(
                    "INSERT INTO campus_addresses (id, name, longitude, latitude) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id as i64)
                .bind(name)
                .bind(place.longitude)
                .bind(place.latitude),
                None => sqlx::query(match table {
                    "campus_blocks" => {
                        "INSERT INTO campus_blocks (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
                    }
                    _ => {
                        "INSERT INTO campus_categories (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
                    }
                })
                .bind(id as i64)
                .bind(name),
            };
            query.execute(&mut *tx).await?;
        }
        CatalogEvent::Renamed { id, name, .. } => {
            sqlx::query(&format!("UPDATE {table} SET name = $2 WHERE id = $1"))
                .bind(id as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        CatalogEvent::Deleted { id } => {
            let sql = if table == "campus_blocks" {
                "UPDATE campus_blocks SET deleted = true WHERE id = $1".to_string()
            } else {
                format!("DELETE FROM {table} WHERE id = $1")
            };
            sqlx::query(&sql).bind(id as i64).execute(&mut *tx).await?;
        }
    }
    Ok(())
}
