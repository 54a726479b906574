//! The server's side of crypto-shredding (README "Personal data"): sealing personal values
//! with their person's key before they go into a command, opening them for answers, and the
//! blind-index secret that turns unique values into reservation keys.
//!
//! Keys are read from the table each time they are used (one indexed read per request that
//! seals or opens), never remembered: an erasure made by another process (the CLI) holds in
//! this one from its commit on; nothing is sealed or opened with a destroyed key.

use aggregates::personal::{Blind, Sealed};
mod crypto;

pub use crypto::*;
use sqlx::{PgConnection, PgPool};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The subject was erased: nothing of theirs may be sealed or opened again.
    #[error("this person's data was erased")]
    Forgotten,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct KeyRing {
    pool: PgPool,
    secret: Vec<u8>,
}

impl KeyRing {
    pub async fn new(pool: PgPool) -> sqlx::Result<Self> {
        let secret = {
            let mut conn = pool.acquire().await?;
            blind_index_secret(&mut conn).await?
        };
        Ok(Self { pool, secret })
    }

    /// The reservation key of `value` in `scope`.
    pub fn blind(&self, scope: &str, value: &str) -> Blind {
        crypto::blind(&self.secret, scope, value)
    }

    /// The blind of a name that is unique in `scope`: of its [`aggregates::text::name_key`],
    /// so that spellings of one name are one name.
    pub fn blind_name(&self, scope: &str, name: &str) -> Blind {
        self.blind(scope, &aggregates::text::name_key(name))
    }

    /// `subject`'s key; [`KeyError::Forgotten`] once erased (or never created).
    pub async fn key(&self, subject: &str) -> Result<Key, KeyError> {
        let key: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT key FROM personal_keys WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        key.flatten()
            .and_then(|k| Key::try_from(k.as_slice()).ok())
            .ok_or(KeyError::Forgotten)
    }

    /// A new subject's key (the existing one if it has one already; Forgotten for a
    /// tombstone: an erased subject never gets a key again).
    pub async fn create(&self, subject: &str) -> Result<Key, KeyError> {
        let mut conn = self.pool.acquire().await?;
        key_of(&mut conn, subject).await
    }

    pub async fn seal(&self, subject: &str, clear: &str) -> Result<Sealed, KeyError> {
        Ok(crypto::seal(subject, &self.key(subject).await?, clear))
    }

    /// Sealed, with the blind that reserves it in `scope`, under `key`.
    pub fn seal_unique_with(&self, subject: &str, key: &Key, scope: &str, clear: &str) -> Sealed {
        let mut sealed = crypto::seal(subject, key, clear);
        sealed.blind = Some(self.blind(scope, clear));
        sealed
    }

    /// The clear text, if its key still exists.
    pub async fn open(&self, sealed: &Sealed) -> Result<Option<String>, KeyError> {
        match self.key(&sealed.key).await {
            Ok(key) => Ok(crypto::open(&key, sealed)),
            Err(KeyError::Forgotten) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The owner of `blind` in `scope`, if reserved.
    pub async fn owner(&self, scope: &str, blind: Blind) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT owner FROM reservations WHERE scope = $1 AND blind = $2")
            .bind(scope)
            .bind(blind.0.as_slice())
            .fetch_optional(&self.pool)
            .await
    }
}

/// `subject`'s key: the existing one, or a new one; Forgotten for a tombstone.
pub async fn key_of(conn: &mut PgConnection, subject: &str) -> Result<Key, KeyError> {
    let fresh = crypto::new_key();
    let key: Option<Vec<u8>> = sqlx::query_scalar(
        "WITH created AS ( \
             INSERT INTO personal_keys (subject, key) VALUES ($1, $2) \
             ON CONFLICT (subject) DO NOTHING RETURNING key \
         ) \
         SELECT key FROM created \
         UNION ALL \
         SELECT key FROM personal_keys WHERE subject = $1 AND NOT EXISTS (SELECT FROM created)",
    )
    .bind(subject)
    .bind(fresh.as_slice())
    .fetch_one(conn)
    .await?;
    key.and_then(|k| Key::try_from(k.as_slice()).ok())
        .ok_or(KeyError::Forgotten)
}

/// The store's blind-index secret, generated on first use.
pub async fn blind_index_secret(conn: &mut PgConnection) -> sqlx::Result<Vec<u8>> {
    sqlx::query(
        "INSERT INTO store_secrets (name, value) VALUES ('blind-index', $1) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(crypto::new_key().as_slice())
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT value FROM store_secrets WHERE name = 'blind-index'")
        .fetch_one(conn)
        .await
}

/// A short hex form of a blind (rate-limit keys and the like).
pub fn hex(blind: Blind) -> String {
    blind.0[..16].iter().map(|b| format!("{b:02x}")).collect()
}
