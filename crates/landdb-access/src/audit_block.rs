//! The columns a store keeps beside a block of audit entries to find them again (its sequence
//! range, time range, agencies, and what answers "who saw this parcel": the communes of what its
//! entries disclosed, or for entries of the older forms every version they disclosed),
//! recomputed from the entries themselves. The hash chain covers the entries, not these columns:
//! emptying `communes` would hide a disclosure from every question without breaking a hash, so
//! verification recomputes each block's columns and names any that differ.
//!
//! Why communes and not versions: an index entry a disclosed version cost PostgreSQL about 5 µs
//! a point lookup (a GIN entry for each), the whole of the access path's budget; a block holds a
//! few communes however many parcels its entries disclosed. "Who received parcel X" reads the
//! blocks of X's commune and picks the entries that list X's versions, exactly.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::audit::{AuditEntry, Broken, Form};

/// A block's index columns, as a store holds them or as its entries imply them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockColumns {
    pub first_seq: i64,
    pub last_seq: i64,
    pub min_at: DateTime<Utc>,
    pub max_at: DateTime<Utc>,
    /// Each agency once; order does not matter.
    pub agencies: BTreeSet<String>,
    /// Every version an entry of the block of the older forms disclosed
    /// ([`crate::AuditEvent::received`]).
    pub disclosed: BTreeSet<i64>,
    /// The communes of what the block's entries of the current form disclosed.
    pub communes: BTreeSet<u32>,
}

impl BlockColumns {
    /// What the columns of a block holding `entries` (in order) must be; `None` for no entries.
    pub fn of(entries: &[AuditEntry]) -> Option<BlockColumns> {
        let (first, last) = (entries.first()?, entries.last()?);
        let mut c = BlockColumns {
            first_seq: first.seq,
            last_seq: last.seq,
            min_at: first.event.at,
            max_at: first.event.at,
            agencies: BTreeSet::new(),
            disclosed: BTreeSet::new(),
            communes: BTreeSet::new(),
        };
        for e in entries {
            c.min_at = c.min_at.min(e.event.at);
            c.max_at = c.max_at.max(e.event.at);
            if !c.agencies.contains(&*e.event.agency) {
                c.agencies.insert(e.event.agency.to_string());
            }
            if e.form == Form::ByCommune {
                c.communes.extend(&e.event.communes);
            } else {
                c.disclosed.extend(e.event.received());
            }
        }
        Some(c)
    }

    /// Checks the stored columns against the block's entries; the first column that differs is
    /// named, with the block (by its `last_seq`, its key).
    pub fn check(&self, entries: &[AuditEntry]) -> Result<(), Broken> {
        let block = self.last_seq;
        let broken = |column: &str, why: String| Broken {
            seq: entries.first().map_or(self.first_seq, |e| e.seq),
            why: format!("audit_block {block}: column {column} {why}: it was edited outside landdb"),
        };
        let Some(implied) = BlockColumns::of(entries) else {
            return Err(broken("entries", "holds no entries".to_owned()));
        };
        if self.last_seq != implied.last_seq {
            return Err(broken(
                "last_seq",
                format!("says {} but its last entry is {}", self.last_seq, implied.last_seq),
            ));
        }
        if self.first_seq != implied.first_seq {
            return Err(broken(
                "first_seq",
                format!("says {} but its first entry is {}", self.first_seq, implied.first_seq),
            ));
        }
        if self.min_at != implied.min_at {
            return Err(broken(
                "min_at",
                format!("says {} but its earliest entry is at {}", self.min_at, implied.min_at),
            ));
        }
        if self.max_at != implied.max_at {
            return Err(broken(
                "max_at",
                format!("says {} but its latest entry is at {}", self.max_at, implied.max_at),
            ));
        }
        if self.agencies != implied.agencies {
            return Err(broken(
                "agencies",
                format!("lists {:?} but its entries are of {:?}", self.agencies, implied.agencies),
            ));
        }
        if self.disclosed != implied.disclosed {
            let missing: Vec<_> = implied.disclosed.difference(&self.disclosed).take(5).collect();
            let extra: Vec<_> = self.disclosed.difference(&implied.disclosed).take(5).collect();
            return Err(broken(
                "disclosed",
                format!("does not list what its entries disclosed (missing {missing:?}, not disclosed {extra:?})"),
            ));
        }
        if self.communes != implied.communes {
            let missing: Vec<_> = implied.communes.difference(&self.communes).take(5).collect();
            let extra: Vec<_> = self.communes.difference(&implied.communes).take(5).collect();
            return Err(broken(
                "communes",
                format!(
                    "does not list the communes its entries disclosed (missing {missing:?}, not disclosed {extra:?})"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, GENESIS};

    fn entries() -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=4)
            .map(|i| {
                let e = AuditEvent {
                    at: DateTime::from_timestamp(1_750_000_000 + i, 0).unwrap_or_default(),
                    agency: if i % 2 == 0 { "tax".into() } else { "police".into() },
                    key_id: "k".into(),
                    method: "GET".into(),
                    endpoint: "/parcels/at".into(),
                    params: String::new(),
                    purpose: "p".into(),
                    status: 200,
                    parcels: 1,
                    personal: if i == 3 { vec![99] } else { Vec::new() },
                    versions: vec![i, 10 + i],
                    communes: vec![20_000 + i as u32],
                }
                .chain(i, &prev);
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    #[test]
    fn every_edited_column_is_named() {
        let e = entries();
        let good = BlockColumns::of(&e).expect("columns");
        good.check(&e).expect("as written");
        assert_eq!(good.communes, BTreeSet::from([20_001, 20_002, 20_003, 20_004]));
        assert!(good.disclosed.is_empty(), "entries of the current form are indexed by commune");
        type Edit = (&'static str, fn(&mut BlockColumns));
        let edits: [Edit; 7] = [
            ("last_seq", |c| c.last_seq += 1),
            ("first_seq", |c| c.first_seq = 2),
            ("min_at", |c| c.min_at += chrono::Duration::seconds(1)),
            ("max_at", |c| c.max_at -= chrono::Duration::seconds(1)),
            ("agencies", |c| {
                c.agencies.remove("tax");
            }),
            ("disclosed", |c| {
                c.disclosed.insert(12);
            }),
            ("communes", |c| {
                c.communes.remove(&20_002);
            }),
        ];
        for (column, edit) in edits {
            let mut c = good.clone();
            edit(&mut c);
            let broken = c.check(&e).expect_err(column);
            assert!(broken.why.contains(&format!("column {column} ")), "{column}: {broken}");
        }
        assert!(good.check(&[]).expect_err("empty").why.contains("column entries"));
        // Entries of the older forms are indexed by every version they disclosed.
        let older: Vec<AuditEntry> = e.into_iter().map(|e| AuditEntry { form: Form::EveryVersion, ..e }).collect();
        let c = BlockColumns::of(&older).expect("columns");
        assert!(c.communes.is_empty());
        assert_eq!(c.disclosed, BTreeSet::from([1, 2, 3, 4, 11, 12, 13, 14, 99]));
    }
}
