//! Webhook subscriptions: an agency's callback, what it wants of its change feed, the secret its
//! deliveries are signed with, and how delivering is going. Pure logic: the store keeps them, the
//! API's delivery worker follows each subscription's feed as the agency's key would.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Dead letters in a row after which deliveries stop until the agency replays or resumes.
pub const PAUSE_AFTER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Active,
    /// Stopped after repeated failure (or by the agency).
    Paused,
}

/// A subscription, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub agency: String,
    /// The key it was made with: deliveries run as that key (and stop when it does).
    pub key_id: String,
    pub callback: String,
    /// Only parcels of these communes (all of the agency's when empty).
    #[serde(default)]
    pub communes: Vec<String>,
    /// Only parcels with one of these land-use codes (all when empty).
    #[serde(default)]
    pub land_use: Vec<String>,
    /// Only parcels matching this CQL2 text filter (over the fields the agency may query).
    #[serde(default)]
    pub filter: Option<String>,
    /// Why deliveries stopped, when they stopped for something other than failed deliveries
    /// (a filter the agency's policy no longer allows).
    #[serde(default)]
    pub note: Option<String>,
    /// The HMAC-SHA256 key of the signatures (hex), shown to the agency once.
    pub secret: String,
    /// Where deliveries go on from in the agency's change feed (none: from a snapshot).
    pub token: Option<String>,
    pub state: State,
    /// Dead letters in a row.
    pub failures: u32,
    pub created_at: DateTime<Utc>,
}

/// A delivery that failed every attempt, kept for the agency to read and replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    pub subscription: String,
    /// The delivery's idempotency id (the same on every attempt and on replay).
    pub delivery: String,
    pub body: String,
    pub attempts: u32,
    pub error: String,
    pub failed_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

impl Subscription {
    /// Whether a parcel of `commune` with `land_use` codes is wanted.
    pub fn wants(&self, commune: &str, land_use: &[&str]) -> bool {
        (self.communes.is_empty() || self.communes.iter().any(|c| c == commune))
            && (self.land_use.is_empty() || land_use.iter().any(|u| self.land_use.iter().any(|w| w == u)))
    }
}

/// The signature of a delivery: `sha256=` and the hex HMAC-SHA256, under the subscription's
/// secret, of the timestamp (Unix seconds), a full stop and the body. A receiver recomputes it
/// and compares, and refuses a timestamp far from its clock (a replayed request).
pub fn signature(secret_hex: &str, timestamp: i64, body: &[u8]) -> String {
    let secret = hex::decode(secret_hex).unwrap_or_default();
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new random secret (32 bytes, hex).
pub fn new_secret() -> String {
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    hex::encode(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is HMAC-SHA256 of `timestamp.body`, against a value computed apart (Python:
    /// `hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()`), not by the same
    /// library.
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let secret = hex::encode(b"Jefe");
        let expected = "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a";
        assert_eq!(signature(&secret, 1_700_000_000, b"{\"a\":1}"), expected);
        assert_ne!(signature(&secret, 1_700_000_001, b"{\"a\":1}"), expected);
    }

    #[test]
    fn filters_pass_what_they_name_and_everything_when_empty() {
        let mut s = Subscription {
            id: "s".into(),
            agency: "a".into(),
            key_id: "k".into(),
            callback: "http://127.0.0.1/".into(),
            communes: Vec::new(),
            land_use: Vec::new(),
            filter: None,
            note: None,
            secret: new_secret(),
            token: None,
            state: State::Active,
            failures: 0,
            created_at: Utc::now(),
        };
        assert!(s.wants("20194", &["ODT"]));
        s.communes = vec!["20197".into()];
        assert!(!s.wants("20194", &["ODT"]));
        assert!(s.wants("20197", &["ODT"]));
        s.land_use = vec!["LUC".into()];
        assert!(!s.wants("20197", &["ODT"]));
        assert!(s.wants("20197", &["ODT", "LUC"]));
    }
}
