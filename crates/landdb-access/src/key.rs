//! API keys: 256 random bits from the operating system, shown once, kept only as a SHA-256
//! hash. A key reads `landdb_<id>_<secret>`: the id (public, 8 bytes) names the key in lists,
//! logs and audit entries; the secret is never stored. A slow password hash is not needed: the
//! secret has 256 bits of entropy, so its SHA-256 cannot be searched.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const PREFIX: &str = "landdb_";

/// A key as the store keeps it: no secret, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub agency: String,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    /// Whether the key opens the door at `now`: not revoked, not expired.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none_or(|r| now < r) && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A new key: the token to hand over once, and the record to store.
#[derive(Debug)]
pub struct NewKey {
    pub token: String,
    pub record: KeyRecord,
}

/// Makes a key for `agency`.
pub fn generate(agency: &str, now: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> NewKey {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id = hex(&id);
    let token = format!("{PREFIX}{id}_{}", hex(&secret));
    let record =
        KeyRecord { id, agency: agency.to_owned(), hash: hash(&token), created_at: now, expires_at, revoked_at: None };
    NewKey { token, record }
}

/// The stored form of a token: its [`digest`] in hex.
pub fn hash(token: &str) -> String {
    hex(&digest(token))
}

/// The SHA-256 of a token, as a server compares it on every request (nothing to format).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A stored [`hash`] as the [`digest`] it spells; `None` when it is not 64 hex digits.
pub fn digest_of_hash(hash: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hash, &mut digest).ok()?;
    Some(digest)
}

/// Whether `token` is a key's (its prefix): what a request's bearer token must be to be looked up
/// as a key. Other credentials (a client certificate's, a platform client's) are kept the same
/// way but never start so, so no request text can pose as one.
pub fn is_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The id part of a token, when it has the shape of one (for messages that must not echo the
/// secret).
pub fn id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && secret.len() == 64).then_some(id)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Bytes first, then one UTF-8 check: `String::push` checks each character as it goes.
    let mut digits = vec![0u8; bytes.len() * 2];
    for (pair, b) in digits.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_random_and_only_its_hash_is_kept() {
        let now = Utc::now();
        let a = generate("tax-danang", now, None);
        let b = generate("tax-danang", now, None);
        assert_ne!(a.token, b.token);
        assert_eq!(a.record.hash, hash(&a.token));
        assert!(!a.record.hash.contains(&a.token[24..]));
        assert_eq!(id_of(&a.token), Some(a.record.id.as_str()));
        assert_eq!(a.token.len(), PREFIX.len() + 16 + 1 + 64);
        assert_eq!(id_of("landdb_short_key"), None);
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(digest_of_hash(&a.record.hash), Some(digest(&a.token)));
        assert_eq!(digest_of_hash(&a.record.hash.to_uppercase()), Some(digest(&a.token)));
        assert_eq!(digest_of_hash(&a.record.hash[1..]), None);
        assert_eq!(digest_of_hash(&format!("{}g", &a.record.hash[1..])), None);
    }

    #[test]
    fn revoked_and_expired_keys_are_not_usable() {
        let now = Utc::now();
        let mut k = generate("x", now, Some(now + chrono::Duration::hours(1))).record;
        assert!(k.usable(now));
        assert!(!k.usable(now + chrono::Duration::hours(2)));
        k.revoked_at = Some(now);
        assert!(!k.usable(now));
    }
}
