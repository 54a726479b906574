//! Sealing and opening personal values (see `aggregates::personal`): XChaCha20-Poly1305 with
//! a random 192-bit nonce under the person's key, the key's subject as associated data (a
//! value cannot be passed off as another person's), and an HMAC-SHA256 digest under the same
//! key. Keys live in `personal_keys`, one row per subject; erasure sets the key to NULL and
//! the row stays as a tombstone, so a subject is never given a new key.
//!
//! Readers load the keys they need in their own transaction ([`KeySet::load`]): a projection
//! applying events sees exactly the keys that existed at its snapshot, so what it writes is a
//! function of the log and the key table, and a rebuild after an erasure writes placeholders
//! where the live projection scrubbed.

use std::collections::{BTreeSet, HashMap};

use aggregates::personal::{Blind, Sealed};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgConnection;

/// What erased free text reads as.
pub const ERASED_TEXT: &str = "(erased)";

/// A person's key.
pub type Key = [u8; 32];

const NONCE: usize = 24;
const DIGEST: usize = 16;

pub fn new_key() -> Key {
    XChaCha20Poly1305::generate_key(&mut OsRng).into()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `clear` sealed with `subject`'s `key`.
pub fn seal(subject: &str, key: &Key, clear: &str) -> Sealed {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: clear.as_bytes(),
                aad: subject.as_bytes(),
            },
        )
        .expect("encryption of a string in memory cannot fail");
    let mut data = nonce.to_vec();
    data.extend_from_slice(&ciphertext);
    let digest = mac(key, &[b"digest\0", clear.as_bytes()]);
    Sealed {
        key: subject.to_string(),
        sealed: B64.encode(data),
        digest: B64.encode(&digest[..DIGEST]),
        blind: None,
    }
}

/// The clear text of `sealed` under `key`, if it opens (the right key, an intact value).
pub fn open(key: &Key, sealed: &Sealed) -> Option<String> {
    let data = B64.decode(&sealed.sealed).ok()?;
    if data.len() < NONCE {
        return None;
    }
    let (nonce, ciphertext) = data.split_at(NONCE);
    let nonce: [u8; NONCE] = nonce.try_into().ok()?;
    let clear = XChaCha20Poly1305::new(key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: sealed.key.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(clear).ok()
}

/// The keyed hash that reserves `value` in `scope` (HMAC-SHA256 under the store's secret).
pub fn blind(secret: &[u8], scope: &str, value: &str) -> Blind {
    Blind(mac(secret, &[scope.as_bytes(), b"\0", value.as_bytes()]))
}

/// Keys by subject, as far as they exist (an erased subject has none).
#[derive(Default, Clone)]
pub struct KeySet(HashMap<String, Key>);

impl KeySet {
    /// The keys of `subjects`, read on `conn` (in the caller's transaction, if any).
    pub async fn load<'a>(
        conn: &mut PgConnection,
        subjects: impl IntoIterator<Item = &'a str>,
    ) -> sqlx::Result<Self> {
        let subjects: BTreeSet<&str> = subjects.into_iter().collect();
        if subjects.is_empty() {
            return Ok(Self::default());
        }
        let subjects: Vec<&str> = subjects.into_iter().collect();
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, key FROM personal_keys WHERE subject = ANY($1) AND key IS NOT NULL",
        )
        .bind(&subjects)
        .fetch_all(conn)
        .await?;
        Ok(Self(
            rows.into_iter()
                .filter_map(|(s, k)| Some((s, Key::try_from(k.as_slice()).ok()?)))
                .collect(),
        ))
    }

    pub fn insert(&mut self, subject: String, key: Key) {
        self.0.insert(subject, key);
    }

    pub fn open(&self, sealed: &Sealed) -> Option<String> {
        open(self.0.get(&sealed.key)?, sealed)
    }

    /// The clear text, or `placeholder` once its key is gone.
    pub fn open_or(&self, sealed: &Sealed, placeholder: &str) -> String {
        self.open(sealed).unwrap_or_else(|| placeholder.to_string())
    }
}

/// A sealed value written into JSON: an object with exactly these fields.
fn as_sealed(value: &Value) -> Option<Sealed> {
    let object = value.as_object()?;
    if object.len() != 3
        || !["key", "sealed", "digest"]
            .iter()
            .all(|f| object.contains_key(*f))
    {
        return None;
    }
    serde_json::from_value(value.clone()).ok()
}

/// The subjects of the sealed values anywhere in `value`.
pub fn sealed_subjects(value: &Value, out: &mut BTreeSet<String>) {
    if let Some(sealed) = as_sealed(value) {
        out.insert(sealed.key);
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| sealed_subjects(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| sealed_subjects(v, out)),
        _ => {}
    }
}

/// Every sealed value in `value` replaced by its clear text, or by [`ERASED_TEXT`] once its
/// key is gone: the JSON an auditor reads.
pub fn unseal_json(value: &mut Value, keys: &KeySet) {
    if let Some(sealed) = as_sealed(value) {
        *value = Value::String(keys.open_or(&sealed, ERASED_TEXT));
        return;
    }
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| unseal_json(v, keys)),
        Value::Object(fields) => fields.values_mut().for_each(|v| unseal_json(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_equal_texts_have_equal_digests() {
        let key = new_key();
        let a = seal("s:1", &key, "David's dentist");
        let b = seal("s:1", &key, "David's dentist");
        assert_ne!(a.sealed, b.sealed, "a fresh nonce each time");
        assert_eq!(a, b, "compared by digest");
        assert_ne!(a, seal("s:1", &key, "something else"));
        assert!(!a.sealed.contains("David"));
        assert_eq!(open(&key, &a).as_deref(), Some("David's dentist"));
        assert_eq!(open(&new_key(), &a), None);
        let mut moved = a.clone();
        moved.key = "s:2".into();
        assert_eq!(open(&key, &moved), None, "bound to its subject");
    }

    /// What sealing and opening cost on this machine, per value (README "Measuring"):
    /// `cargo test --release -p projections personal::tests::cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn cost() {
        let key = new_key();
        let text = "grandmother in St Mary's hospital, back on Sunday"; // a typical reason
        let n = 200_000;
        let start = std::time::Instant::now();
        let sealed: Vec<Sealed> = (0..n)
            .map(|_| seal("orchestra-member:17", &key, text))
            .collect();
        let sealing = start.elapsed();
        let start = std::time::Instant::now();
        let opened = sealed.iter().filter(|s| open(&key, s).is_some()).count();
        let opening = start.elapsed();
        assert_eq!(opened, n);
        println!(
            "seal: {:.2} µs, open: {:.2} µs per {}-byte value",
            sealing.as_secs_f64() * 1e6 / n as f64,
            opening.as_secs_f64() * 1e6 / n as f64,
            text.len()
        );
    }

    #[test]
    fn json_is_unsealed_where_keys_exist_and_erased_elsewhere() {
        let (k1, k2) = (new_key(), new_key());
        let mut value = serde_json::json!({
            "A": {"name": seal("s:1", &k1, "Alice"), "n": 3},
            "list": [seal("s:2", &k2, "Bob")]
        });
        let mut subjects = BTreeSet::new();
        sealed_subjects(&value, &mut subjects);
        assert_eq!(subjects.into_iter().collect::<Vec<_>>(), ["s:1", "s:2"]);
        let mut keys = KeySet::default();
        keys.insert("s:1".into(), k1);
        unseal_json(&mut value, &keys);
        assert_eq!(
            value,
            serde_json::json!({"A": {"name": "Alice", "n": 3}, "list": [ERASED_TEXT]})
        );
    }
}
