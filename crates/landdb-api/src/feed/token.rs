//! Resume tokens of the change feed: where a follower is, sealed to its agency and to the scope
//! it was following, and unreadable to it. A token counts national changes and versions (its
//! position is a place in the whole country's feed), so it is encrypted, not only signed: a
//! follower learns nothing from it, cannot move it, and cannot hand it to another agency. The key
//! is the store's (`server_secret`), so a token holds across restarts and across the servers of
//! one database.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use landdb_model::{FeedPosition, VersionId};

use crate::ogc::ApiError;

/// Where a follower is in its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the parcels of its scope as they were at feed position `at`, in version order,
    /// after `after`.
    Snapshot { at: FeedPosition, after: Option<VersionId> },
    /// Reading the changes committed after `after`.
    Changes { after: FeedPosition },
    /// Moving a copy from the scope fingerprinted `from` to the token's: the parcels of feed
    /// position `at` that entered or left, in version order after `after`; then the changes
    /// after `at`.
    Rescope { at: FeedPosition, after: Option<VersionId>, from: u64 },
}

/// A follower's place: its phase, and the scope it follows (a fingerprint of its policy's area
/// and personal-data grant). A token of another scope starts a new snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub phase: Phase,
    pub scope: u64,
}

/// The purpose the store keeps the feed's key under.
pub const KEY_PURPOSE: &str = "feed-token";

/// The layout of a token's plain text: form, phase, position, version, scope, and the scope a
/// rescope comes from. Tokens of form 1 (before rescoping, without the last) still open.
const FORM: u8 = 2;
const NONCE: usize = 12;
const PLAIN: usize = 34;
const PLAIN_FORM_1: usize = 26;

/// The key tokens are sealed with.
pub struct FeedKey(ChaCha20Poly1305);

impl std::fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedKey(..)")
    }
}

/// The answer every token that cannot be opened gets, whatever is wrong with it.
fn invalid() -> ApiError {
    ApiError::bad_parameter(
        "after: not a token of this feed for this agency (give the `next` token of an earlier answer, or none to start again)",
    )
}

/// What a token is bound to besides its key: the feed and the agency.
fn bound_to(agency: &str) -> Vec<u8> {
    let mut aad = b"landdb-feed-1\0".to_vec();
    aad.extend_from_slice(agency.as_bytes());
    aad
}

impl FeedKey {
    pub fn new(secret: [u8; 32]) -> FeedKey {
        FeedKey(ChaCha20Poly1305::new(&secret.into()))
    }

    /// The token of `token` for `agency`: URL-safe, a fresh nonce each time.
    pub fn seal(&self, agency: &str, token: Token) -> String {
        let mut plain = [0u8; PLAIN];
        plain[0] = FORM;
        let (phase, position, after, from) = match token.phase {
            Phase::Snapshot { at, after } => (0, at.0, after.map_or(0, |v| v.0), 0),
            Phase::Changes { after } => (1, after.0, 0, 0),
            Phase::Rescope { at, after, from } => (2, at.0, after.map_or(0, |v| v.0), from),
        };
        plain[1] = phase;
        plain[2..10].copy_from_slice(&position.to_be_bytes());
        plain[10..18].copy_from_slice(&after.to_be_bytes());
        plain[18..26].copy_from_slice(&token.scope.to_be_bytes());
        plain[26..34].copy_from_slice(&from.to_be_bytes());
        let mut nonce = [0u8; NONCE];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let aad = bound_to(agency);
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 seals messages of any length below 256 GiB"));
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        hex::encode(bytes)
    }

    /// The token `raw` holds, if it was sealed by this key for `agency`.
    pub fn open(&self, agency: &str, raw: &str) -> Result<Token, ApiError> {
        let bytes = hex::decode(raw).map_err(|_| invalid())?;
        if bytes.len() <= NONCE {
            return Err(invalid());
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let aad = bound_to(agency);
        let plain =
            self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| invalid())?;
        if !matches!((plain.len(), plain.first()), (PLAIN, Some(&FORM)) | (PLAIN_FORM_1, Some(1))) {
            return Err(invalid());
        }
        let number = |at: usize| i64::from_be_bytes(plain[at..at + 8].try_into().unwrap_or_default());
        let (position, after) = (FeedPosition(number(2)), number(10));
        let after = (after != 0).then_some(VersionId(after));
        let phase = match plain[1] {
            0 => Phase::Snapshot { at: position, after },
            1 => Phase::Changes { after: position },
            2 if plain.len() == PLAIN => Phase::Rescope { at: position, after, from: number(26).cast_unsigned() },
            _ => return Err(invalid()),
        };
        Ok(Token { phase, scope: u64::from_be_bytes(plain[18..26].try_into().unwrap_or_default()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> FeedKey {
        FeedKey::new([seed; 32])
    }

    fn phase() -> impl Strategy<Value = Phase> {
        prop_oneof![
            (0i64..i64::MAX, proptest::option::of(1i64..i64::MAX))
                .prop_map(|(at, after)| Phase::Snapshot { at: FeedPosition(at), after: after.map(VersionId) }),
            (0i64..i64::MAX).prop_map(|after| Phase::Changes { after: FeedPosition(after) }),
            (0i64..i64::MAX, proptest::option::of(1i64..i64::MAX), any::<u64>()).prop_map(|(at, after, from)| {
                Phase::Rescope { at: FeedPosition(at), after: after.map(VersionId), from }
            }),
        ]
    }

    proptest! {
        /// A token opens, for its agency and under its key, as the place it was sealed from.
        #[test]
        fn a_token_opens_as_sealed(phase in phase(), scope: u64) {
            let token = Token { phase, scope };
            prop_assert_eq!(key(1).open("tax-danang", &key(1).seal("tax-danang", token)).ok(), Some(token));
        }

        /// Another agency, another key, or any edit of the token, and it does not open; nor
        /// does anything made up.
        #[test]
        fn a_token_opens_for_nobody_else(phase in phase(), scope: u64, at in 0usize..200, bit in 0u8..8, junk in "[0-9a-f]{0,120}") {
            let sealed = key(1).seal("tax-danang", Token { phase, scope });
            prop_assert!(key(1).open("police-danang", &sealed).is_err());
            prop_assert!(key(2).open("tax-danang", &sealed).is_err());
            let mut bytes = hex::decode(&sealed).expect("hex");
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(key(1).open("tax-danang", &hex::encode(bytes)).is_err());
            prop_assert!(key(1).open("tax-danang", &junk).is_err());
        }
    }

    /// Two tokens of the same place differ (a fresh nonce each), so a follower cannot tell
    /// from its tokens whether the feed moved.
    #[test]
    fn the_same_place_seals_differently_each_time() {
        let token = Token { phase: Phase::Changes { after: FeedPosition(7) }, scope: 1 };
        assert_ne!(key(1).seal("a", token), key(1).seal("a", token));
    }
}
