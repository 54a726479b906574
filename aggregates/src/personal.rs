//! Personal data in events (crypto-shredding): a person's names, account ids and free text are
//! carried as [`Sealed`] values, encrypted with a key of that person's own that lives outside
//! the log; erasing the person destroys the key, and every copy in the log becomes unreadable
//! while the log itself stays untouched. The domain never reads the clear text: it compares
//! sealed values by their digest, and says through [`StoreEffect`]s which reservations (keyed
//! hashes of unique values) its events claim or release and whose key they destroy.

use serde::{Deserialize, Serialize};

/// A personal value as events carry it. Sealing and opening happen outside the domain
/// (`projections::personal`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    /// Whose value this is: the subject of the key that sealed it (opaque, such as
    /// `orchestra-member:17`).
    pub key: String,
    /// base64 of the nonce and the ciphertext.
    pub sealed: String,
    /// base64 of a MAC of the clear text under the same key: two values of one person are
    /// equal exactly when their digests are (and after erasure nobody can tell what either was).
    pub digest: String,
    /// The keyed hash of the clear value that a reservation claims (unique names, account
    /// ids). In memory only: never written to the log.
    #[serde(skip)]
    pub blind: Option<Blind>,
}

impl PartialEq for Sealed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.digest == other.digest
    }
}

/// A keyed hash (HMAC-SHA256 under the store's blind-index secret) of a normalised value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Blind(pub [u8; 32]);

/// What appending an event does to the store's side tables, in the same statement.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEffect {
    /// Reserve `blind` in `scope` for `owner`: a second claim of it fails the append.
    Claim {
        scope: &'static str,
        blind: Blind,
        owner: String,
    },
    /// Free what `owner` holds in `scope` (every scope when None).
    Release {
        scope: Option<&'static str>,
        owner: String,
    },
    /// Destroy `subject`'s key: everything sealed with it becomes unreadable.
    Shred { subject: String },
    /// Set `subject`'s password hash (`credentials`): secrets never go into the log.
    Credential { subject: String, hash: String },
    /// The append fails unless `subject` still has a key (was not erased), checked under a
    /// lock in the same statement: an event that names a person (a new owner, a manager, a
    /// follower) cannot commit after that person's erasure.
    Require { subject: String },
    /// The append fails unless `owner` still holds a reservation in `scope` (the record it
    /// names was not deleted), checked under a lock in the same statement.
    RequireHeld { scope: &'static str, owner: String },
}

/// Events that touch the side tables say so.
pub trait HasStoreEffects {
    fn store_effects(&self) -> Vec<StoreEffect> {
        Vec::new()
    }
}
