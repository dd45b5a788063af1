//! Paging cursors that tell nothing and cannot be forged. A cursor names the parcel a page ends
//! at, sealed (HMAC-SHA256) to the caller's agency, the query it pages through and its direction:
//! a cursor edited, made up, taken from another query or handed to another agency is refused
//! with the one answer every invalid cursor gets, so a cursor cannot ask "is version V current?"
//! or "what lies next to V?" of parcels outside the caller's area.
//!
//! The key is random for each process unless `LANDDB_CURSOR_KEY` gives one (64 hex digits),
//! which servers behind one address must share for their cursors to hold across them.

use hmac::{Hmac, Mac};
use landdb_model::VersionId;
use sha2::Sha256;

use crate::ogc::ApiError;

/// Which way a cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    After,
    Before,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::After => "after",
            Direction::Before => "before",
        }
    }
}

/// The secret cursors are sealed with.
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// Bytes of the MAC kept in a cursor: 128 bits, beyond guessing.
const TAG: usize = 16;

impl CursorKey {
    pub fn new(key: [u8; 32]) -> CursorKey {
        CursorKey(key)
    }

    /// `LANDDB_CURSOR_KEY` (64 hex digits), or a random key for this process.
    pub fn from_env_or_random() -> CursorKey {
        if let Ok(raw) = std::env::var("LANDDB_CURSOR_KEY") {
            match hex::decode(raw.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(key) => return CursorKey(key),
                None => tracing::warn!("LANDDB_CURSOR_KEY is not 64 hex digits; cursors use a random key"),
            }
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        CursorKey(key)
    }

    fn mac(&self, agency: &str, query: &str, direction: Direction, version: VersionId) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [b"landdb-cursor-1".as_slice(), agency.as_bytes(), query.as_bytes(), direction.name().as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&version.0.to_be_bytes());
        mac
    }

    /// The cursor of a page boundary at `version`, for `agency` paging through `query`.
    pub fn seal(&self, agency: &str, query: &str, direction: Direction, version: VersionId) -> String {
        let mut bytes = version.0.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.mac(agency, query, direction, version).finalize().into_bytes()[..TAG]);
        hex::encode(bytes)
    }

    /// The version a cursor names, if this key sealed it for this agency, query and direction.
    pub fn open(&self, agency: &str, query: &str, direction: Direction, cursor: &str) -> Result<VersionId, ApiError> {
        let bytes = hex::decode(cursor).map_err(|_| invalid(direction))?;
        if bytes.len() != 8 + TAG {
            return Err(invalid(direction));
        }
        let (version, tag) = bytes.split_at(8);
        let version = VersionId(i64::from_be_bytes(version.try_into().map_err(|_| invalid(direction))?));
        // Compared in constant time.
        self.mac(agency, query, direction, version).verify_truncated_left(tag).map_err(|_| invalid(direction))?;
        Ok(version)
    }
}

/// The one answer to every cursor that cannot be used: made up, edited, of another query or
/// agency, or pointing at a parcel that is no longer where it was.
pub fn invalid(direction: Direction) -> ApiError {
    ApiError::bad_parameter(format!(
        "{}: this cursor cannot be used (cursors come from the `next` and `prev` links of this query, for this caller, and end when the parcel they point at changes): start again from the first page",
        direction.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A cursor opens for the agency, query and direction it was sealed for, and for nothing
        /// else; any edit of it is refused.
        #[test]
        fn cursors_open_only_where_they_were_made(v in proptest::num::i64::ANY, flip in 0usize..48) {
            let key = CursorKey::new([7; 32]);
            let c = key.seal("tax-hcm", "sortby=area_m2", Direction::After, VersionId(v));
            proptest::prop_assert_eq!(key.open("tax-hcm", "sortby=area_m2", Direction::After, &c).ok(), Some(VersionId(v)));
            proptest::prop_assert!(key.open("police", "sortby=area_m2", Direction::After, &c).is_err());
            proptest::prop_assert!(key.open("tax-hcm", "sortby=number", Direction::After, &c).is_err());
            proptest::prop_assert!(key.open("tax-hcm", "sortby=area_m2", Direction::Before, &c).is_err());
            proptest::prop_assert!(CursorKey::new([8; 32]).open("tax-hcm", "sortby=area_m2", Direction::After, &c).is_err());
            let mut edited = c.clone().into_bytes();
            edited[flip] = if edited[flip] == b'0' { b'1' } else { b'0' };
            let edited = String::from_utf8(edited).expect("hex");
            proptest::prop_assert!(key.open("tax-hcm", "sortby=area_m2", Direction::After, &edited).is_err());
        }
    }

    #[test]
    fn a_plain_version_number_is_no_cursor() {
        let key = CursorKey::new([1; 32]);
        let e = key.open("a", "", Direction::After, "12345").expect_err("not sealed");
        let f = key.open("a", "", Direction::After, &"0".repeat(48)).expect_err("not sealed");
        assert_eq!(e.description, f.description, "every invalid cursor gets the same answer");
    }
}
