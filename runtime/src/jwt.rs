//! Signed tokens (HS256). Each bounded context has its own audience, so a token of one
//! mini-program is worthless to the other.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const TOKEN_TTL_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// What every token carries besides the context's own claims.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<C> {
    aud: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    claims: C,
}

impl Jwt {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A random secret: tokens die with the process.
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&secret)
    }

    pub fn issue<C: Serialize>(&self, audience: &str, claims: C) -> String {
        self.issue_for(audience, claims, TOKEN_TTL_SECONDS)
    }

    /// A token that expires after `ttl_seconds` (the console's sessions are shorter-lived).
    pub fn issue_for<C: Serialize>(&self, audience: &str, claims: C, ttl_seconds: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let envelope = Envelope {
            aud: audience.to_string(),
            iat: now,
            exp: now + ttl_seconds,
            claims,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &envelope, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Who a valid, unexpired token for one of `audiences` speaks for: its audience and its
    /// own claims (without `iat`/`exp`). None for any other token. Says nothing of whether
    /// the subject still exists: that is each service's check.
    pub fn verified_claims(
        &self,
        audiences: &[&str],
        token: &str,
    ) -> Option<(String, serde_json::Map<String, serde_json::Value>)> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Envelope<serde_json::Map<String, serde_json::Value>>>(
            token,
            &self.decoding,
            &validation,
        )
        .ok()?;
        let envelope = data.claims;
        Some((envelope.aud, envelope.claims))
    }

    /// The claims of a valid, unexpired token for `audience`; None otherwise.
    pub fn verify<C: DeserializeOwned>(&self, audience: &str, token: &str) -> Option<C> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Envelope<C>>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        sub: String,
    }

    #[test]
    fn a_token_verifies_only_with_its_secret_and_audience() {
        let jwt = Jwt::new(b"0123456789abcdef0123");
        let token = jwt.issue(
            "orchestra",
            Claims {
                sub: "David".into(),
            },
        );
        assert_eq!(
            jwt.verify::<Claims>("orchestra", &token),
            Some(Claims {
                sub: "David".into()
            })
        );
        assert_eq!(jwt.verify::<Claims>("campus", &token), None);
        assert_eq!(Jwt::random().verify::<Claims>("orchestra", &token), None);
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(jwt.verify::<Claims>("orchestra", &tampered), None);
    }
}
