//! One re-keying of the reservations of names that are unique (organisations, blocks, activity
//! categories and addresses), run once at start after the SQL migrations: they were reserved
//! by a keyed hash of the name as typed, and are now reserved by a keyed hash of its
//! [`name_key`] (NFKC, case-folded), so that `OrgA`, `ＯｒｇＡ` and `orga` are one name.
//!
//! The current name of each reservation's owner is read from the log (these names are not
//! personal data, and are in the events in clear). Two names that were distinct and are one
//! name now both keep their reservations under the old hash (a warning names their owners,
//! opaque ids): nothing is taken from anyone, and a later rename re-keys them. In one
//! transaction under the data migrations' advisory lock, with the reservations locked against
//! appends meanwhile.

use crate::personal as crypto;
use aggregates::campus::catalog::{Addresses, Blocks, Catalog, Categories};
use aggregates::campus::organizations::ORG_NAME_SCOPE;
use aggregates::text::name_key;
use sqlx::PgConnection;

use crate::personal::blind_index_secret;

const NAME: &str = "name-keys-v1";

/// (reservation scope, aggregate type of its owners' streams)
fn scopes() -> [(&'static str, &'static str); 4] {
    [
        (ORG_NAME_SCOPE, "Organization"),
        (Blocks::NAME_SCOPE, Blocks::TYPE),
        (Categories::NAME_SCOPE, Categories::TYPE),
        (Addresses::NAME_SCOPE, Addresses::TYPE),
    ]
}

pub async fn run(conn: &mut PgConnection) -> anyhow::Result<()> {
    let Some(mut tx) = super::begin_once(conn, NAME).await? else {
        return Ok(());
    };
    sqlx::query("LOCK TABLE reservations IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let secret = blind_index_secret(&mut tx).await?;
    let (mut rekeyed, mut kept) = (0u64, 0u64);
    for (scope, aggregate_type) in scopes() {
        // Each reservation with the name its owner's stream last gave it.
        let rows: Vec<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT r.owner, r.blind, latest.name FROM reservations r \
             LEFT JOIN LATERAL ( \
                 SELECT coalesce(e.payload -> 'ApplicationSubmitted' ->> 'name', \
                                 e.payload -> 'ApplicationApproved' ->> 'name', \
                                 e.payload -> 'OrganizationEdited' ->> 'name', \
                                 e.payload -> 'Created' ->> 'name', \
                                 e.payload -> 'Renamed' ->> 'name') AS name \
                 FROM events e \
                 WHERE e.aggregate_type = $2 AND e.aggregate_id = split_part(r.owner, ':', 2) \
                   AND coalesce(e.payload -> 'ApplicationSubmitted' ->> 'name', \
                                e.payload -> 'ApplicationApproved' ->> 'name', \
                                e.payload -> 'OrganizationEdited' ->> 'name', \
                                e.payload -> 'Created' ->> 'name', \
                                e.payload -> 'Renamed' ->> 'name') IS NOT NULL \
                 ORDER BY e.sequence DESC LIMIT 1 \
             ) latest ON true \
             WHERE r.scope = $1 ORDER BY r.owner",
        )
        .bind(scope)
        .bind(aggregate_type)
        .fetch_all(&mut *tx)
        .await?;
        for (owner, blind, name) in rows {
            let Some(name) = name else { continue };
            let old = crypto::blind(&secret, scope, &name);
            let new = crypto::blind(&secret, scope, &name_key(&name));
            if old.0.as_slice() != blind.as_slice() || old == new {
                continue;
            }
            let moved = sqlx::query(
                "UPDATE reservations SET blind = $3 WHERE scope = $1 AND blind = $2 \
                   AND NOT EXISTS (SELECT FROM reservations WHERE scope = $1 AND blind = $3)",
            )
            .bind(scope)
            .bind(old.0.as_slice())
            .bind(new.0.as_slice())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 1 {
                rekeyed += 1;
            } else {
                kept += 1;
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT owner FROM reservations WHERE scope = $1 AND blind = $2",
                )
                .bind(scope)
                .bind(new.0.as_slice())
                .fetch_optional(&mut *tx)
                .await?;
                tracing::warn!(
                    scope,
                    owner = %owner,
                    holder = holder.as_deref().unwrap_or("-"),
                    "a unique name is another spelling of a name `holder` holds: both are kept; \
                     rename one of them (until then a new record may take the other spelling \
                     once `holder` lets its name go)"
                );
            }
        }
    }
    sqlx::query("INSERT INTO data_migrations (name, detail) VALUES ($1, $2)")
        .bind(NAME)
        .bind(format!(
            "re-keyed {rekeyed} name reservations by their normalised form; {kept} kept as they were"
        ))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
