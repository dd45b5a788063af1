//! The audit trail: one entry for every request that returns or changes parcel data, chained by
//! SHA-256 so that editing, deleting or reordering entries in the database is detected. Each
//! entry's hash covers its sequence number, its content and the previous entry's hash; the first
//! entry follows [`GENESIS`].
//!
//! An entry's hash covers one of three preimages ([`Form`]): entries written since the communes
//! of what they disclosed are on record (PostGIS migration 9, embedded migration 6) list every
//! disclosed version and those communes; entries written before keep the preimage they were
//! hashed with, so that they still verify. A chain never goes back from a newer form to an
//! older one. The chain alone cannot see entries cut from its end
//! together with the recorded head: that is what signed checkpoints outside the database are for
//! ([`crate::checkpoint`]).

use std::borrow::Cow;
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
    /// Every parcel version the answer disclosed, personal data or not: who received which
    /// parcel. An entry keeps them sorted, each once (the order of an answer says nothing the
    /// request does not); empty in entries of [`Form::PersonalOnly`].
    #[serde(default)]
    pub versions: Vec<i64>,
    /// The communes (by number) of the versions disclosed: what a store indexes a block of
    /// entries by, so that "who received parcel X" reads only the blocks of X's commune and
    /// then the entries that list X. Sorted, each once; empty in entries of the older forms.
    #[serde(default)]
    pub communes: Vec<u32>,
}

/// Which preimage an entry's hash covers, oldest first: a chain's forms never go back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// Written before every disclosed version was listed: twelve fields, no `versions`.
    PersonalOnly,
    /// Thirteen fields: `versions` (as sorted deltas) before the previous hash.
    EveryVersion,
    /// Fourteen fields: `versions` (as sorted deltas), then `communes`, before the previous hash.
    #[default]
    ByCommune,
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
    #[serde(default)]
    pub form: Form,
}

impl AuditEvent {
    /// `at` cut to microseconds, as the stores keep it, so that hashes read back the same.
    pub fn new_at(now: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }

    /// The entry this event becomes after `prev` (hash) at `seq` (its versions and communes
    /// sorted, each once).
    pub fn chain(mut self, seq: i64, prev_hash: &str) -> AuditEntry {
        self.versions = sorted(&self.versions).into_owned();
        self.communes = sorted(&self.communes).into_owned();
        let hash = entry_hash(seq, &self, prev_hash, Form::ByCommune);
        AuditEntry { seq, event: self, prev_hash: prev_hash.to_owned(), hash, form: Form::ByCommune }
    }

    /// Every version the answer disclosed, for the indexes of who received what: `versions`
    /// and `personal` (entries of [`Form::PersonalOnly`] list only the latter); may repeat.
    pub fn received(&self) -> impl Iterator<Item = i64> + '_ {
        self.versions.iter().chain(&self.personal).copied()
    }
}

/// Versions or communes sorted, each once (borrowed when they already are: the writer's usual
/// case).
fn sorted<T: Ord + Clone>(items: &[T]) -> Cow<'_, [T]> {
    if items.windows(2).all(|w| w[0] < w[1]) {
        return Cow::Borrowed(items);
    }
    let mut v = items.to_vec();
    v.sort_unstable();
    v.dedup();
    Cow::Owned(v)
}

/// Sorted versions written as their first value and then the differences: an answer's versions
/// are often near each other, and a page of them costs a few bytes each in the line instead of
/// seven or more.
struct Deltas<'a>(&'a [i64]);

impl Serialize for Deltas<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        let mut prev = 0i64;
        for (i, v) in self.0.iter().enumerate() {
            seq.serialize_element(&if i == 0 { *v } else { v.wrapping_sub(prev) })?;
            prev = *v;
        }
        seq.end()
    }
}

fn from_deltas(deltas: &[i64]) -> Vec<i64> {
    let mut acc = 0i64;
    deltas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            acc = if i == 0 { *d } else { acc.wrapping_add(*d) };
            acc
        })
        .collect()
}

/// The fields an entry's hash covers, in order: a JSON array of every field, so that no two
/// different entries can be written the same way (the forms differ in length, too): sequence
/// number, time in microseconds, agency, key, method, endpoint, parameters, purpose, status,
/// parcels, personal-data versions, then from [`Form::EveryVersion`] on the versions (sorted
/// deltas), from [`Form::ByCommune`] on the communes, and last the previous hash.
struct Preimage<'a> {
    seq: i64,
    event: &'a AuditEvent,
    prev_hash: &'a str,
    form: Form,
}

impl Serialize for Preimage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let e = self.event;
        let mut a = s.serialize_seq(None)?;
        a.serialize_element(&self.seq)?;
        a.serialize_element(&e.at.timestamp_micros())?;
        for text in [&*e.agency, &*e.key_id, &e.method, &e.endpoint, &e.params, &*e.purpose] {
            a.serialize_element(text)?;
        }
        a.serialize_element(&e.status)?;
        a.serialize_element(&e.parcels)?;
        a.serialize_element(&e.personal)?;
        if self.form >= Form::EveryVersion {
            a.serialize_element(&Deltas(&sorted(&e.versions)))?;
        }
        if self.form >= Form::ByCommune {
            a.serialize_element(&*sorted(&e.communes))?;
        }
        a.serialize_element(self.prev_hash)?;
        a.end()
    }
}

/// Serialises the preimage of the entry into `out` (compact JSON).
fn write_preimage(
    out: impl std::io::Write,
    seq: i64,
    event: &AuditEvent,
    prev_hash: &str,
    form: Form,
) -> serde_json::Result<()> {
    serde_json::to_writer(out, &Preimage { seq, event, prev_hash, form })
}

/// The hash of an entry of `form`: SHA-256 over the compact JSON of its preimage (serialised
/// straight into the hasher).
pub fn entry_hash(seq: i64, e: &AuditEvent, prev_hash: &str, form: Form) -> String {
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
    let _ = write_preimage(&mut hasher, seq, e, prev_hash, form);
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
    let _ = write_preimage(&mut *lines, seq, event, prev_hash, Form::ByCommune);
    let hash = hex(&Sha256::digest(&lines[start + GENESIS.len() + 1..]));
    lines[start..start + GENESIS.len()].copy_from_slice(hash.as_bytes());
    lines.push(b'\n');
    hash
}

/// The eleven fields both forms begin with, owned.
type LineHead = (i64, i64, String, String, String, String, String, String, u16, u64, Vec<i64>);

/// A line's JSON array, read in any form: eleven fields, then the previous hash (the oldest
/// form) or the versions; after the versions, the previous hash or the communes and then it.
struct LineFields {
    head: LineHead,
    deltas: Option<Vec<i64>>,
    communes: Option<Vec<u32>>,
    prev_hash: String,
}

impl<'de> Deserialize<'de> for LineFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, SeqAccess, Visitor};
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Twelfth {
            Deltas(Vec<i64>),
            PrevHash(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Thirteenth {
            Communes(Vec<u32>),
            PrevHash(String),
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of 12, 13 or 14 audit fields")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<LineFields, A::Error> {
                macro_rules! next {
                    ($i:expr) => {
                        a.next_element()?.ok_or_else(|| A::Error::invalid_length($i, &self))?
                    };
                }
                let head = (
                    next!(0),
                    next!(1),
                    next!(2),
                    next!(3),
                    next!(4),
                    next!(5),
                    next!(6),
                    next!(7),
                    next!(8),
                    next!(9),
                    next!(10),
                );
                let (deltas, communes, prev_hash) = match next!(11) {
                    Twelfth::PrevHash(h) => (None, None, h),
                    Twelfth::Deltas(d) => match next!(12) {
                        Thirteenth::PrevHash(h) => (Some(d), None, h),
                        Thirteenth::Communes(c) => (Some(d), Some(c), next!(13)),
                    },
                };
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom("more fields than an audit entry has"));
                }
                Ok(LineFields { head, deltas, communes, prev_hash })
            }
        }
        d.deserialize_seq(V)
    }
}

/// Reads a line [`write_line`] wrote (or one of an older form).
/// The hash is taken as written, not recomputed: a line that was edited is judged by [`verify`],
/// which names it.
pub fn read_line(line: &str) -> Result<AuditEntry, String> {
    let (hash, json) = line.split_once(' ').ok_or_else(|| format!("an audit line without its hash: {:.80}", line))?;
    let LineFields { head, deltas, communes, prev_hash } =
        serde_json::from_str(json).map_err(|e| format!("an audit line that does not read ({e}): {:.80}", line))?;
    let (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal) = head;
    let at = DateTime::from_timestamp_micros(at).ok_or_else(|| format!("audit entry {seq}: a time out of range"))?;
    let (agency, key_id, purpose) = (agency.into(), key_id.into(), purpose.into());
    let (versions, communes, form) = match (deltas, communes) {
        (Some(d), Some(c)) => (from_deltas(&d), c, Form::ByCommune),
        (Some(d), None) => (from_deltas(&d), Vec::new(), Form::EveryVersion),
        (None, _) => (Vec::new(), Vec::new(), Form::PersonalOnly),
    };
    let event = AuditEvent {
        at,
        agency,
        key_id,
        method,
        endpoint,
        params,
        purpose,
        status,
        parcels,
        personal,
        versions,
        communes,
    };
    Ok(AuditEntry { seq, event, prev_hash, hash: hash.to_owned(), form })
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
    /// Entries followed (all of them, unless the chain was resumed from a checkpoint).
    pub entries: u64,
    pub head: String,
    /// The last entry's sequence number.
    pub last_seq: i64,
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
    form: Form,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { prev: GENESIS.to_owned(), expected_seq: 1, count: 0, form: Form::PersonalOnly }
    }
}

impl Chain {
    /// A chain known good up to entry `seq` with `hash` (a checkpoint the caller trusts): the
    /// entries after it are followed from there.
    pub fn resume(seq: i64, hash: &str) -> Chain {
        Chain { prev: hash.to_owned(), expected_seq: seq + 1, count: 0, form: Form::PersonalOnly }
    }

    /// The last entry followed (sequence number and hash; 0 and [`GENESIS`] before any).
    pub fn last(&self) -> (i64, &str) {
        (self.expected_seq - 1, &self.prev)
    }

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
        if entry.form < self.form {
            return Err(Broken {
                seq: entry.seq,
                why: format!(
                    "it is in the older form {:?} after entries of the newer form {:?}: it was written outside landdb",
                    entry.form, self.form
                ),
            });
        }
        if entry_hash(entry.seq, &entry.event, &entry.prev_hash, entry.form) != entry.hash {
            return Err(Broken {
                seq: entry.seq,
                why: "its content does not match its hash: it was edited".to_owned(),
            });
        }
        self.prev.clone_from(&entry.hash);
        self.expected_seq += 1;
        self.count += 1;
        self.form = entry.form;
        Ok(())
    }

    /// Checks that the chain, followed to the real end of the table, ends at the recorded head.
    pub fn end(self, head: Option<(i64, String)>) -> Result<Verified, Broken> {
        let last = self.expected_seq - 1;
        match head {
            Some((seq, _)) if seq < last => Err(Broken {
                seq: seq + 1,
                why: format!(
                    "entries {}..={last} lie after the recorded head (entry {seq}): they were added outside \
                     landdb's writer, or the head was moved back",
                    seq + 1
                ),
            }),
            Some((seq, _)) if seq > last => Err(Broken {
                seq: last + 1,
                why: format!(
                    "the chain ends at entry {last} but the recorded head is entry {seq}: entries were removed from its end"
                ),
            }),
            Some((seq, hash)) if hash != self.prev => Err(Broken {
                seq,
                why: format!("the recorded head's hash {hash} is not the hash of the last entry {}", self.prev),
            }),
            None if last > 0 => Err(Broken {
                seq: last,
                why: "the record of the chain's head is missing: it was deleted, and entries after it may be too"
                    .to_owned(),
            }),
            _ => Ok(Verified { entries: self.count, head: self.prev, last_seq: last }),
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
            versions: vec![i as i64, 1_000_000 + i as i64],
            communes: vec![20_281 + (i % 2) as u32],
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
        fn any_edit_is_found_at_its_entry(n in 2u64..30, at in 0usize..30, field in 0..5) {
            let mut c = chain(n);
            let h = head(&c);
            let i = at % c.len();
            match field {
                0 => c[i].event.parcels += 1,
                1 => c[i].event.personal.push(99),
                2 if i.is_multiple_of(2) => c[i].event.versions.push(2_000_000),
                2 => c[i].event.agency = format!("{}x", c[i].event.agency).into(),
                3 => c[i].event.communes.push(99_999),
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
        let e = AuditEvent { versions: vec![1000, 1003, 1004, 2000], communes: vec![20281, 20290], ..event(3) };
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
            [1000, 3, 1, 996],
            [20281, 20290],
            GENESIS,
        ]);
        let hash = hex(&Sha256::digest(array.to_string().as_bytes()));
        assert_eq!(entry_hash(7, &e, GENESIS, Form::ByCommune), hash);
        assert_eq!(e.clone().chain(7, GENESIS).hash, hash);
        // Unsorted, repeated: the same sets, the same entry.
        let shuffled = AuditEvent {
            versions: vec![2000, 1003, 1000, 1004, 1003],
            communes: vec![20290, 20281, 20290],
            ..e.clone()
        };
        assert_eq!(shuffled.chain(7, GENESIS).hash, hash);
        // The communes are covered: another commune, another hash.
        let moved = AuditEvent { communes: vec![20281], ..e };
        assert_ne!(moved.chain(7, GENESIS).hash, hash);
    }

    /// The line of an entry of `form`, written as that form's writer wrote it.
    fn old_line(seq: i64, e: &AuditEvent, prev: &str, form: Form) -> String {
        let mut fields = vec![
            serde_json::json!(seq),
            serde_json::json!(e.at.timestamp_micros()),
            serde_json::json!(e.agency),
            serde_json::json!(e.key_id),
            serde_json::json!(e.method),
            serde_json::json!(e.endpoint),
            serde_json::json!(e.params),
            serde_json::json!(e.purpose),
            serde_json::json!(e.status),
            serde_json::json!(e.parcels),
            serde_json::json!(e.personal),
        ];
        if form == Form::EveryVersion {
            fields.push(serde_json::to_value(Deltas(&e.versions)).expect("json"));
        }
        fields.push(serde_json::json!(prev));
        let array = serde_json::Value::Array(fields);
        let hash = hex(&Sha256::digest(array.to_string().as_bytes()));
        format!("{hash} {array}")
    }

    /// Entries written before migrations 6 and 9 keep the preimages they were hashed with, and
    /// one chain runs through all three forms, never back.
    #[test]
    fn entries_of_the_older_forms_verify_as_they_were_written() {
        let oldest = AuditEvent { versions: Vec::new(), communes: Vec::new(), ..event(1) };
        let first = read_line(&old_line(1, &oldest, GENESIS, Form::PersonalOnly)).expect("an oldest line reads");
        assert_eq!((first.form, &first.event), (Form::PersonalOnly, &oldest));
        let older = AuditEvent { communes: Vec::new(), ..event(2) };
        let second = read_line(&old_line(2, &older, &first.hash, Form::EveryVersion)).expect("an older line reads");
        assert_eq!((second.form, &second.event), (Form::EveryVersion, &older));
        let third = event(3).chain(3, &second.hash);
        let h = Some((3, third.hash.clone()));
        let all = [first.clone(), second.clone(), third.clone()];
        assert_eq!(verify(all, h).expect("one chain over every form").entries, 3);
        // Never back from a newer form to an older one: such an entry was written by hand.
        for (newer, older) in [(third.clone(), first.clone()), (third, second.clone()), (second, first)] {
            let newer = AuditEntry { seq: 1, prev_hash: GENESIS.to_owned(), ..newer };
            let newer = AuditEntry { hash: entry_hash(1, &newer.event, GENESIS, newer.form), ..newer };
            let mut back = AuditEntry { seq: 2, prev_hash: newer.hash.clone(), ..older };
            back.hash = entry_hash(2, &back.event, &back.prev_hash, back.form);
            let h = Some((2, back.hash.clone()));
            let broken = verify([newer, back], h).expect_err("form went back");
            assert_eq!(broken.seq, 2);
            assert!(broken.why.contains("outside landdb"), "{broken}");
        }
    }

    #[test]
    fn the_chain_is_judged_to_the_real_end_of_the_table() {
        let c = chain(6);
        // Entries after the recorded head (forged, or the head moved back).
        let broken = verify(c.clone(), Some((4, c[3].hash.clone()))).expect_err("entries after the head");
        assert_eq!(broken.seq, 5);
        assert!(broken.why.contains("after the recorded head"), "{broken}");
        // A head that names the last entry with another hash.
        let broken = verify(c.clone(), Some((6, c[4].hash.clone()))).expect_err("head hash");
        assert!(broken.why.contains("not the hash of the last entry"), "{broken}");
        // Resumed from a checkpoint: only what follows it is read.
        let mut resumed = Chain::resume(3, &c[2].hash);
        for e in &c[3..] {
            resumed.follow(e).expect("follows");
        }
        assert_eq!(resumed.last(), (6, c[5].hash.as_str()));
    }

    #[test]
    fn deltas_round_trip_and_keep_a_page_of_versions_small() {
        let versions: Vec<i64> = (0..100).map(|i| 4_000_000 + i * 3).collect();
        let e = AuditEvent { versions: versions.clone(), ..event(1) };
        let mut lines = Vec::new();
        write_line(1, &e, GENESIS, &mut lines);
        let line = std::str::from_utf8(&lines).expect("utf-8").trim_end();
        assert_eq!(read_line(line).expect("reads").event.versions, versions);
        let plain = serde_json::to_string(&versions).expect("json").len();
        let deltas = serde_json::to_string(&Deltas(&versions)).expect("json").len();
        assert!(deltas * 3 < plain, "{deltas} bytes against {plain}");
        assert_eq!(from_deltas(&[i64::MIN, -1, 5]), vec![i64::MIN, i64::MAX, i64::MIN + 4]);
    }

    proptest! {
        #[test]
        fn a_line_reads_back_as_the_entry_it_was_written_from(
            seq in 1i64..1_000_000,
            params in ".*",
            purpose in "\\PC*",
            personal in proptest::collection::vec(any::<i64>(), 0..5),
            versions in proptest::collection::btree_set(any::<i64>(), 0..8),
            communes in proptest::collection::btree_set(any::<u32>(), 0..4),
        ) {
            let versions = versions.into_iter().collect();
            let communes = communes.into_iter().collect();
            let e = AuditEvent { params, purpose: purpose.into(), personal, versions, communes, ..event(7) };
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
        c[1].hash = entry_hash(c[1].seq, &c[1].event, &c[1].prev_hash, Form::ByCommune);
        assert_eq!(verify(c, h).expect_err("found").seq, 3);
    }
}
