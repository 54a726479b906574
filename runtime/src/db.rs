use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// Create the database if it does not exist.
pub async fn create_database(url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let options = PgConnectOptions::from_str(url)?;
    create_database_if_missing(&options)
        .await
        .with_context(|| format!("DATABASE_URL {}", crate::config::redact_url(url)))
}

/// Whether the database `url` names exists (the operators' read-only tools refuse to create
/// an empty one where a lost one was).
pub async fn database_exists(url: &str) -> anyhow::Result<bool> {
    use anyhow::Context;
    let options = PgConnectOptions::from_str(url)?;
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(true);
    };
    let check = async {
        let mut conn = PgConnection::connect_with(&options.clone().database("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(exists)
    };
    check
        .await
        .with_context(|| format!("DATABASE_URL {}", crate::config::redact_url(url)))
}

/// A pool on an existing database, for statements: every use is one autocommit statement
/// (or one simple-query message), and no transaction is ever begun on it. A connection that
/// sqlx knows to be inside a transaction is closed instead of reused. Each statement may run
/// for at most `statement_timeout`: one held up (by a lock an operator took on a table, say)
/// fails and is rolled back, so a request never gives up on a statement that commits later.
pub async fn pool(url: &str, size: u32, statement_timeout: Duration) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?
        .application_name("ensemble")
        .options([(
            "statement_timeout",
            format!("{}ms", statement_timeout.as_millis().max(1)),
        )]);
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_release(|conn, _| Box::pin(async move { Ok(!known_in_transaction(conn)) }))
        .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
        .await?;
    Ok(pool)
}

/// A small pool for health checks and metrics: statements cut off after 0.7 s, waits for a
/// connection after 0.5 s, so that probes can neither hang nor take the requests' connections.
pub async fn probe_pool(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?
        .application_name("ensemble-probes")
        .options([("statement_timeout", "700ms")]);
    Ok(PgPoolOptions::new()
        .max_connections(PROBE_POOL_SIZE)
        .acquire_timeout(Duration::from_millis(500))
        .after_release(|conn, _| Box::pin(async move { Ok(!known_in_transaction(conn)) }))
        .connect_lazy_with(options.log_statements(tracing::log::LevelFilter::Trace)))
}

/// A pool on a hot standby, for the services' reads: made lazily (a standby that is down at
/// start-up, or comes later, is not an error), a wait for a connection cut off after a second
/// (a standby that stopped answering must not hold a request: the primary answers instead),
/// each statement after `statement_timeout`. Nothing is ever written through it.
pub fn standby_pool(url: &str, size: u32, statement_timeout: Duration) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?
        .application_name("ensemble-reads")
        .options([
            (
                "statement_timeout",
                format!("{}ms", statement_timeout.as_millis().max(1)),
            ),
            ("default_transaction_read_only", "on".to_string()),
        ]);
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(1))
        .after_release(|conn, _| Box::pin(async move { Ok(!known_in_transaction(conn)) }))
        .connect_lazy_with(options.log_statements(tracing::log::LevelFilter::Trace)))
}

/// Connections for health checks and metrics.
pub const PROBE_POOL_SIZE: u32 = 2;

/// A pool for transactions (the projector, rebuilds). A connection must never come back
/// inside a transaction: a future dropped during `begin()` (sqlx 0.8 is not cancel-safe there)
/// leaves the session in one with sqlx none the wiser, and the next borrower's statements
/// would run inside a stranger's transaction. Inside a transaction begun by an earlier
/// statement, transaction_timestamp() lags statement_timestamp(); such a connection is closed
/// instead of reused. That costs one round trip per release (sqlx does not expose the server's
/// transaction status), which is why statements use [`pool`] and only transactions this one.
pub async fn transaction_pool(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.application_name("ensemble-tx");
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_release(|conn, _| {
            Box::pin(async move {
                if known_in_transaction(conn) {
                    return Ok(false);
                }
                let clean = outside_transaction(conn).await?;
                if !clean {
                    tracing::error!("a connection came back inside a transaction; closing it");
                }
                Ok(clean)
            })
        })
        .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
        .await?;
    Ok(pool)
}

/// Whether sqlx knows the connection to be inside a transaction (a `Transaction` that was
/// leaked rather than ended): such a connection is closed instead of reused. Free; the server's
/// own view costs a round trip ([`outside_transaction`]).
fn known_in_transaction(conn: &PgConnection) -> bool {
    let inside = conn.is_in_transaction();
    if inside {
        tracing::error!("a connection came back inside a transaction; closing it");
    }
    inside
}

/// Whether the session is outside any transaction. The simple query protocol (a query
/// without arguments) sends one message, so in autocommit both timestamps are one instant.
async fn outside_transaction(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let row = sqlx::Executor::fetch_one(
        &mut *conn,
        "SELECT transaction_timestamp() = statement_timestamp()",
    )
    .await?;
    sqlx::Row::try_get(&row, 0)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    let maintenance = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&maintenance).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it meanwhile: said as duplicate_database, or (two
            // CREATE DATABASE at the same instant) as a unique violation on pg_database.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Connections for transactions: the projector's pass, a rebuild, a catch-up from the CLI.
pub const TX_POOL_SIZE: u32 = 4;

/// Apply the embedded migrations (safe from several processes at once: sqlx takes a lock), on
/// a connection of their own that is closed afterwards (they run in transactions).
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?.application_name("ensemble-migrate");
    let mut conn = PgConnection::connect_with(&options).await?;
    let migrator = sqlx::migrate!("../migrations");
    // The time machine's replays are caches of the read models' old shape, and their views of
    // live tables would hold a migration up: a new shape drops them first.
    let newest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .unwrap_or(None);
    if applied.is_some_and(|applied| applied < newest) {
        crate::views::drop_all(&mut conn).await?;
    }
    migrator.run(&mut conn).await?;
    crate::migrations::run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Whether `e` means the connection to the database was lost or refused (I/O, the server
/// shutting down or terminating the session, a connection exception): nothing the request did
/// wrong, and worth a retry.
pub fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now; class 08.
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
        }),
        _ => false,
    }
}
