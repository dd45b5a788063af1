//! The audit trail: one entry for every request that returns or changes parcel data, chained by
//! SHA-256 so that editing, deleting or reordering entries in the database is detected. Each
//! entry's hash covers its sequence number, its content and the previous entry's hash; the first
//! entry follows [`GENESIS`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::hex;

/// The hash the first entry chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the API reports it; the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Microsecond precision: what both stores keep.
    pub at: DateTime<Utc>,
    /// Shared with the caller's record: every request of an agency names the same three strings.
    pub agency: Arc<str>,
    pub key_id: Arc<str>,
    pub method: String,
    pub endpoint: String,
    /// The query string as sent.
    pub params: String,
    pub purpose: Arc<str>,
    pub status: u16,
    /// How many parcels the answer held.
    pub parcels: u64,
    /// The versions whose personal data the answer disclosed.
    pub personal: Vec<i64>,
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// `at` cut to microseconds, as the stores keep it, so that hashes read back the same.
    pub fn new_at(now: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }

    /// The entry this event becomes after `prev` (hash) at `seq`.
    pub fn chain(self, seq: i64, prev_hash: &str) -> AuditEntry {
        let hash = entry_hash(seq, &self, prev_hash);
        AuditEntry { seq, event: self, prev_hash: prev_hash.to_owned(), hash }
    }
}

/// The fields an entry's hash covers, in order: a JSON array of every field, so that no two
/// different entries can be written the same way.
type Preimage<'a> = (i64, i64, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, u16, u64, &'a [i64], &'a str);

fn preimage<'a>(seq: i64, e: &'a AuditEvent, prev_hash: &'a str) -> Preimage<'a> {
    (
        seq,
        e.at.timestamp_micros(),
        &e.agency,
        &e.key_id,
        &e.method,
        &e.endpoint,
        &e.params,
        &e.purpose,
        e.status,
        e.parcels,
        &e.personal,
        prev_hash,
    )
}

/// The hash of an entry: SHA-256 over the compact JSON of its [`Preimage`] (serialised straight
/// into the hasher).
pub fn entry_hash(seq: i64, e: &AuditEvent, prev_hash: &str) -> String {
    struct Hasher(Sha256);
    impl std::io::Write for Hasher {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = Hasher(Sha256::new());
    // Writing into a hasher cannot fail, nor can serialising strings and numbers.
    let _ = serde_json::to_writer(&mut hasher, &preimage(seq, e, prev_hash));
    hex(&hasher.0.finalize())
}

/// Appends the entry `event` becomes at `seq` after `prev_hash` to `lines`, as one line of text:
/// its hash, a space, and the JSON array the hash covers. This is how a store that keeps
/// entries in blocks holds them (the PostGIS one: a row a batch costs the request path far less
/// than a row an entry). The JSON is written once, and hashed as written. Returns the hash.
pub fn write_line(seq: i64, event: &AuditEvent, prev_hash: &str, lines: &mut Vec<u8>) -> String {
    let start = lines.len();
    lines.extend_from_slice(GENESIS.as_bytes());
    lines.push(b' ');
    // Writing into a vector cannot fail, nor can serialising strings and numbers.
    let _ = serde_json::to_writer(&mut *lines, &preimage(seq, event, prev_hash));
    let hash = hex(&Sha256::digest(&lines[start + GENESIS.len() + 1..]));
    lines[start..start + GENESIS.len()].copy_from_slice(hash.as_bytes());
    lines.push(b'\n');
    hash
}

/// Reads a line [`write_line`] wrote. The hash is taken as written, not recomputed: a line that
/// was edited is judged by [`verify`], which names it.
pub fn read_line(line: &str) -> Result<AuditEntry, String> {
    type Owned = (i64, i64, String, String, String, String, String, String, u16, u64, Vec<i64>, String);
    let (hash, json) = line.split_once(' ').ok_or_else(|| format!("an audit line without its hash: {:.80}", line))?;
    let (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal, prev_hash): Owned =
        serde_json::from_str(json).map_err(|e| format!("an audit line that does not read ({e}): {:.80}", line))?;
    let at = DateTime::from_timestamp_micros(at).ok_or_else(|| format!("audit entry {seq}: a time out of range"))?;
    let (agency, key_id, purpose) = (agency.into(), key_id.into(), purpose.into());
    let event = AuditEvent { at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal };
    Ok(AuditEntry { seq, event, prev_hash, hash: hash.to_owned() })
}

/// Where the chain breaks, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

/// What a verification saw: the entries and the last hash (worth writing down elsewhere: an
/// attacker who rewrites the whole chain cannot match a head kept outside the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub head: String,
}

/// Follows the chain through `entries` (in sequence order), which must end at `head` (the last
/// sequence number and hash the store recorded beside the entries, when it has any): the first
/// entry that was edited, removed, moved or added out of band is named.
pub fn verify(entries: impl IntoIterator<Item = AuditEntry>, head: Option<(i64, String)>) -> Result<Verified, Broken> {
    let mut chain = Chain::default();
    for entry in entries {
        chain.follow(&entry)?;
    }
    chain.end(head)
}

/// [`verify`] an entry at a time, for a log read page by page.
#[derive(Debug, Clone)]
pub struct Chain {
    prev: String,
    expected_seq: i64,
    count: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { prev: GENESIS.to_owned(), expected_seq: 1, count: 0 }
    }
}

impl Chain {
    /// Checks the next entry.
    pub fn follow(&mut self, entry: &AuditEntry) -> Result<(), Broken> {
        if entry.seq != self.expected_seq {
            return Err(Broken {
                seq: entry.seq,
                why: format!("expected entry {} here: entries are missing or out of order", self.expected_seq),
            });
        }
        if entry.prev_hash != self.prev {
            return Err(Broken {
                seq: entry.seq,
                why: "it does not follow the entry before it (that entry was changed, removed or moved)".to_owned(),
            });
        }
        if entry_hash(entry.seq, &entry.event, &entry.prev_hash) != entry.hash {
            return Err(Broken {
                seq: entry.seq,
                why: "its content does not match its hash: it was edited".to_owned(),
            });
        }
        self.prev.clone_from(&entry.hash);
        self.expected_seq += 1;
        self.count += 1;
        Ok(())
    }

    /// Checks that the chain ends at the recorded head.
    pub fn end(self, head: Option<(i64, String)>) -> Result<Verified, Broken> {
        let last = self.expected_seq - 1;
        match head {
            Some((seq, hash)) if seq != last || hash != self.prev => Err(Broken {
                seq: self.expected_seq,
                why: format!(
                    "the chain ends at entry {last} but the recorded head is entry {seq}: entries were removed from its end"
                ),
            }),
            None if self.count > 0 => Err(Broken {
                seq: last,
                why: "the record of the chain's head is missing: it was deleted, and entries after it may be too"
                    .to_owned(),
            }),
            _ => Ok(Verified { entries: self.count, head: self.prev }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            at: AuditEvent::new_at(Utc::now()),
            agency: format!("agency-{}", i % 3).into(),
            key_id: "0123456789abcdef".into(),
            method: "GET".into(),
            endpoint: "/collections/parcels/items".into(),
            params: format!("bbox={i}"),
            purpose: "thuế".into(),
            status: 200,
            parcels: i,
            personal: vec![i as i64],
        }
    }

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|i| {
                let e = event(i).chain(i as i64, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(c: &[AuditEntry]) -> Option<(i64, String)> {
        c.last().map(|e| (e.seq, e.hash.clone()))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(20);
        let h = head(&c);
        assert_eq!(verify(c, h).expect("verifies").entries, 20);
        assert!(verify(Vec::new(), None).is_ok());
        assert_eq!(verify(chain(3), None).expect_err("no head").seq, 3, "entries without a recorded head");
    }

    proptest! {
        #[test]
        fn any_edit_is_found_at_its_entry(n in 2u64..30, at in 0usize..30, field in 0..4) {
            let mut c = chain(n);
            let h = head(&c);
            let i = at % c.len();
            match field {
                0 => c[i].event.parcels += 1,
                1 => c[i].event.personal.push(99),
                2 => c[i].event.agency = format!("{}x", c[i].event.agency).into(),
                _ => c[i].event.at += chrono::Duration::microseconds(1),
            }
            let broken = verify(c, h).expect_err("edit found");
            prop_assert_eq!(broken.seq, i as i64 + 1);
        }

        #[test]
        fn a_deleted_entry_is_found(n in 2u64..30, at in 0usize..30) {
            let mut c = chain(n);
            let h = head(&c);
            let i = at % c.len();
            c.remove(i);
            let broken = verify(c, h).expect_err("deletion found");
            prop_assert!(broken.seq <= i as i64 + 2);
        }

        #[test]
        fn swapped_entries_are_found(n in 3u64..30, at in 0usize..28) {
            let mut c = chain(n);
            let h = head(&c);
            let i = at % (c.len() - 1);
            // Their contents swapped, sequence numbers left in place (an UPDATE of two rows).
            let (a, b) = (c[i].clone(), c[i + 1].clone());
            c[i] = AuditEntry { seq: a.seq, ..b.clone() };
            c[i + 1] = AuditEntry { seq: b.seq, ..a };
            prop_assert_eq!(verify(c, h).expect_err("swap found").seq, i as i64 + 1);
        }
    }

    #[test]
    fn the_hash_covers_the_json_array_of_every_field() {
        let e = event(3);
        let array = serde_json::json!([
            7,
            e.at.timestamp_micros(),
            e.agency,
            e.key_id,
            e.method,
            e.endpoint,
            e.params,
            e.purpose,
            e.status,
            e.parcels,
            e.personal,
            GENESIS,
        ]);
        assert_eq!(entry_hash(7, &e, GENESIS), hex(&Sha256::digest(array.to_string().as_bytes())));
    }

    proptest! {
        #[test]
        fn a_line_reads_back_as_the_entry_it_was_written_from(
            seq in 1i64..1_000_000,
            params in ".*",
            purpose in "\\PC*",
            personal in proptest::collection::vec(any::<i64>(), 0..5),
        ) {
            let e = AuditEvent { params, purpose: purpose.into(), personal, ..event(7) };
            let mut lines = b"earlier line\n".to_vec();
            let hash = write_line(seq, &e, GENESIS, &mut lines);
            let text = std::str::from_utf8(&lines).expect("utf-8");
            let line = text.lines().nth(1).expect("one line more, whatever the text held");
            prop_assert_eq!(text.lines().count(), 2);
            let read = read_line(line).expect("reads");
            prop_assert_eq!(&read, &e.clone().chain(seq, GENESIS));
            prop_assert_eq!(read.hash, hash);
        }
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_refused_by_what_it_lacks() {
        assert!(read_line("no-json-here").expect_err("no space").contains("without its hash"));
        assert!(read_line("abc [1,2]").expect_err("short array").contains("does not read"));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut c = chain(5);
        let h = head(&c);
        c[1].event.parcels = 0;
        c[1].hash = entry_hash(c[1].seq, &c[1].event, &c[1].prev_hash);
        assert_eq!(verify(c, h).expect_err("found").seq, 3);
    }
}
