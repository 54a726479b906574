//! Housekeeping of the answers kept for safe retries (`idempotency_keys`, kept by the HTTP
//! layer's retry cache) and of the rate limits' rows (`write_limits`, [`crate::limits`]).

/// Forget answers older than 24 h, and rate-limit rows whose moment has passed (they hold
/// nothing, and keep no keyed hash of a name or an address longer than needed).
pub async fn expire(pool: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM write_limits WHERE tat < now()")
        .execute(pool)
        .await?;
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
