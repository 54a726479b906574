//! Data migrations: rewrites of the store that SQL alone cannot do (they need the keys or the
//! domain's rules), each run once at start after the SQL migrations, in one transaction under
//! an advisory lock, and recorded in `data_migrations`.

mod names;
mod personal;

use sqlx::{Connection, PgConnection};

/// Every data migration not run yet, in order.
pub async fn run(conn: &mut PgConnection) -> anyhow::Result<()> {
    personal::run(conn).await?;
    names::run(conn).await
}

/// The transaction of data migration `name`, under the data migrations' advisory lock (two
/// processes starting at once run it once); None when it has run already.
async fn begin_once<'c>(
    conn: &'c mut PgConnection,
    name: &str,
) -> anyhow::Result<Option<sqlx::Transaction<'c, sqlx::Postgres>>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('ensemble-data-migration'))")
        .execute(&mut *tx)
        .await?;
    let done: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM data_migrations WHERE name = $1)")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    Ok((!done).then_some(tx))
}
