//! What a change of the national feed is to one follower: pure logic over what the store says of
//! the versions involved and what the follower's scope sees.
//!
//! A mirror keyed by version applies the events in order and ends equal to the follower's view:
//! `created`, `updated` and `entered` add their version (`updated` first removes the one it
//! `replaces`); `retired` and `left` remove theirs. Every rule reads only the versions'
//! lineage, never the neighbouring changes, so a page may end anywhere, even inside a batch.

use std::collections::HashMap;

use landdb_model::{BatchId, FeedPosition, ParcelVersion, VersionId};
use landdb_store::{ChangeKind, ParcelChange};

/// What happened to a version, as one follower sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A parcel of the follower's scope as it was when its snapshot was taken.
    Snapshot,
    /// A new version in scope, from nothing or from versions in scope (a split or merge).
    Created,
    /// A new version in scope that replaces one version in scope (`replaces`).
    Updated,
    /// A new version in scope from versions outside it (the parcel moved in), or a current
    /// parcel the follower's scope grew over (its policy changed).
    Entered,
    /// A version in scope stopped being current.
    Retired,
    /// A version in scope was replaced by versions outside it (the parcel moved out), a
    /// current parcel the follower's scope no longer covers (its policy changed), or, to a
    /// webhook, a version replaced by one its filter does not want.
    Left,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Created => "created",
            Kind::Updated => "updated",
            Kind::Entered => "entered",
            Kind::Retired => "retired",
            Kind::Left => "left",
        }
    }

    /// Whether the event carries the parcel (it adds a version to the follower's copy).
    pub fn adds(self) -> bool {
        matches!(self, Kind::Snapshot | Kind::Created | Kind::Updated | Kind::Entered)
    }
}

/// One event of a follower's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub version: VersionId,
    /// The batch that made the change (none for a snapshot's parcels).
    pub batch: Option<BatchId>,
    /// The place in the national feed (never shown: it counts every change in the country).
    pub position: FeedPosition,
    /// `updated`: the version it replaces.
    pub replaces: Option<VersionId>,
    /// `created`: the versions in scope it came from.
    pub came_from: Vec<VersionId>,
    /// `retired`: the versions in scope it went to.
    pub went_to: Vec<VersionId>,
}

impl Event {
    /// An event of `kind` about `version` alone (no batch, no lineage): a snapshot's parcel, or
    /// one that entered or left when the follower's scope changed, at feed position `position`.
    pub fn plain(kind: Kind, version: VersionId, position: FeedPosition) -> Event {
        Event { kind, version, batch: None, position, replaces: None, came_from: Vec::new(), went_to: Vec::new() }
    }
}

/// What the store says of the versions a page of changes involves.
#[derive(Debug, Default)]
pub struct Facts {
    /// The changed versions, their parents and their children.
    pub versions: HashMap<VersionId, ParcelVersion>,
    /// The versions made from each retired version.
    pub children: HashMap<VersionId, Vec<VersionId>>,
}

impl Facts {
    fn seen(&self, v: VersionId, sees: &impl Fn(&ParcelVersion) -> bool) -> bool {
        self.versions.get(&v).is_some_and(sees)
    }
}

/// The event `change` is to a follower whose scope `sees`, or none when it does not concern it.
/// A retirement whose one successor in scope replaces it alone says nothing: that successor's
/// `updated` event removes it.
pub fn classify(change: &ParcelChange, facts: &Facts, sees: &impl Fn(&ParcelVersion) -> bool) -> Option<Event> {
    let version = facts.versions.get(&change.version)?;
    if !sees(version) {
        return None;
    }
    let mut event = Event {
        kind: Kind::Created,
        version: change.version,
        batch: Some(change.batch),
        position: change.position,
        replaces: None,
        came_from: Vec::new(),
        went_to: Vec::new(),
    };
    match change.kind {
        ChangeKind::Created => {
            let parents = &version.lineage;
            let in_scope: Vec<VersionId> = parents.iter().copied().filter(|p| facts.seen(*p, sees)).collect();
            event.kind = match (parents.len(), in_scope.len()) {
                (1, 1) => {
                    event.replaces = Some(parents[0]);
                    Kind::Updated
                }
                (0, _) => Kind::Created,
                (_, 0) => Kind::Entered,
                _ => {
                    event.came_from = in_scope;
                    Kind::Created
                }
            };
        }
        ChangeKind::Retired => {
            let children = facts.children.get(&change.version).map_or(&[][..], Vec::as_slice);
            let in_scope: Vec<VersionId> = children.iter().copied().filter(|c| facts.seen(*c, sees)).collect();
            let replaced_alone =
                |c: VersionId| facts.versions.get(&c).is_some_and(|v| v.lineage.as_slice() == [change.version]);
            event.kind = match (children.len(), in_scope.len()) {
                (1, 1) if replaced_alone(children[0]) => return None,
                (n, 0) if n > 0 => Kind::Left,
                _ => {
                    event.went_to = in_scope;
                    Kind::Retired
                }
            };
        }
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use geo::{MultiPolygon, polygon};
    use landdb_model::{CommuneCode, NationalParcelId, Parcel, ParcelKey, ProvinceCode};
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashSet};

    fn version(id: i64, commune: &str, lineage: Vec<i64>) -> ParcelVersion {
        let commune = CommuneCode::parse(commune).expect("commune");
        ParcelVersion {
            id: VersionId(id),
            parcel: Parcel {
                national_id: NationalParcelId::parse("w6ugjkr525ux").expect("id"),
                province: ProvinceCode::parse("48").expect("province"),
                key: ParcelKey { commune, sheet: "1".into(), number: id.to_string() },
                commune_code_received: String::new(),
                land_use: Vec::new(),
                legal_area_m2: None,
                measured_area_m2: None,
                geometry_area_m2: 1.0,
                address: None,
                certificate_no: None,
                geometry: MultiPolygon(vec![
                    polygon![(x: 108.0, y: 16.0), (x: 108.001, y: 16.0), (x: 108.0, y: 16.001)],
                ]),
                source_crs: None,
                extra: serde_json::Map::new(),
                right_holders: Vec::new(),
            },
            valid_from: Utc::now(),
            valid_to: None,
            batch: BatchId(1),
            lineage: lineage.into_iter().map(VersionId).collect(),
        }
    }

    /// A random history: versions in two communes, each batch retiring some current versions
    /// and making new ones from them (updates, splits, merges, moves between the communes) or
    /// from nothing. Returns the versions and the changes in feed order.
    fn history(steps: Vec<(u8, u8, bool)>) -> (HashMap<VersionId, ParcelVersion>, Vec<ParcelChange>) {
        let mut versions = HashMap::new();
        let mut changes = Vec::new();
        let mut current: Vec<i64> = Vec::new();
        let mut next = 1i64;
        let mut seq = 0i64;
        let communes = ["20194", "20227"];
        let mut change = |kind, v: i64, batch: i64, changes: &mut Vec<ParcelChange>| {
            seq += 1;
            changes.push(ParcelChange {
                position: FeedPosition(seq),
                batch: BatchId(batch),
                kind,
                version: VersionId(v),
                national_id: NationalParcelId::parse("w6ugjkr525ux").expect("id"),
                commune: String::new(),
            });
        };
        for (batch, (take, make, retire_first)) in steps.into_iter().enumerate() {
            let batch = batch as i64 + 1;
            let take = (take as usize % 3).min(current.len());
            let parents: Vec<i64> = current.drain(..take).collect();
            let made: Vec<i64> = (0..(make % 3))
                .map(|_| {
                    let id = next;
                    next += 1;
                    id
                })
                .collect();
            // New versions come from the taken ones, or from nothing when none was taken; a
            // taken version that nothing came from is retired.
            for (i, &id) in made.iter().enumerate() {
                let commune = communes[(id as usize + i) % 2];
                versions.insert(
                    VersionId(id),
                    version(
                        id,
                        commune,
                        if made.len() == 1 || parents.len() <= 1 {
                            parents.clone()
                        } else {
                            vec![parents[i % parents.len()]]
                        },
                    ),
                );
            }
            let mut order: Vec<(ChangeKind, i64)> = parents.iter().map(|&p| (ChangeKind::Retired, p)).collect();
            let creations = made.iter().map(|&v| (ChangeKind::Created, v));
            if retire_first {
                order.extend(creations)
            } else {
                order = creations.chain(order).collect()
            }
            for (kind, v) in order {
                change(kind, v, batch, &mut changes);
            }
            current.extend(made);
        }
        (versions, changes)
    }

    proptest! {
        /// A copy that applies a follower's events, page boundary or not, holds exactly the
        /// current versions its scope sees, for every history and every scope.
        #[test]
        fn a_copy_following_the_events_holds_what_the_scope_sees(
            steps in proptest::collection::vec((0u8..3, 0u8..3, any::<bool>()), 1..40),
            scope in 0usize..3,
        ) {
            let (versions, changes) = history(steps);
            let mut children: HashMap<VersionId, Vec<VersionId>> = HashMap::new();
            for v in versions.values() {
                for p in &v.lineage {
                    children.entry(*p).or_default().push(v.id);
                }
            }
            let facts = Facts { versions: versions.clone(), children };
            let communes: [&[&str]; 3] = [&["20194"], &["20227"], &["20194", "20227"]];
            let visible: HashSet<&str> = communes[scope].iter().copied().collect();
            let sees = |v: &ParcelVersion| visible.contains(v.parcel.key.commune.as_str());
            let mut copy: BTreeSet<VersionId> = BTreeSet::new();
            let mut current: BTreeSet<VersionId> = BTreeSet::new();
            for change in &changes {
                match change.kind {
                    ChangeKind::Created => current.insert(change.version),
                    ChangeKind::Retired => current.remove(&change.version),
                };
                if let Some(e) = classify(change, &facts, &sees) {
                    prop_assert!(sees(&versions[&e.version]), "an event about a version outside the scope");
                    for v in e.came_from.iter().chain(&e.went_to).chain(&e.replaces) {
                        prop_assert!(sees(&versions[v]), "lineage names a version outside the scope");
                    }
                    if let Some(r) = e.replaces {
                        copy.remove(&r);
                    }
                    if e.kind.adds() { copy.insert(e.version); } else { copy.remove(&e.version); }
                }
            }
            let expected: BTreeSet<VersionId> = current.into_iter().filter(|v| sees(&versions[v])).collect();
            prop_assert_eq!(copy, expected);
        }
    }

    #[test]
    fn a_parcel_moving_out_of_scope_is_left_and_moving_in_is_entered() {
        let old = version(1, "20194", vec![]);
        let moved = version(2, "20227", vec![1]);
        let facts = Facts {
            versions: [(old.id, old), (moved.id, moved)].into(),
            children: [(VersionId(1), vec![VersionId(2)])].into(),
        };
        let change = |kind, v| ParcelChange {
            position: FeedPosition(v),
            batch: BatchId(2),
            kind,
            version: VersionId(v),
            national_id: NationalParcelId::parse("w6ugjkr525ux").expect("id"),
            commune: String::new(),
        };
        let in_first = |v: &ParcelVersion| v.parcel.key.commune.as_str() == "20194";
        let in_second = |v: &ParcelVersion| v.parcel.key.commune.as_str() == "20227";
        let both = |_: &ParcelVersion| true;
        assert_eq!(classify(&change(ChangeKind::Retired, 1), &facts, &in_first).map(|e| e.kind), Some(Kind::Left));
        assert_eq!(classify(&change(ChangeKind::Created, 2), &facts, &in_first), None);
        assert_eq!(classify(&change(ChangeKind::Created, 2), &facts, &in_second).map(|e| e.kind), Some(Kind::Entered));
        assert_eq!(classify(&change(ChangeKind::Retired, 1), &facts, &in_second), None);
        let updated = classify(&change(ChangeKind::Created, 2), &facts, &both).expect("an event");
        assert_eq!((updated.kind, updated.replaces), (Kind::Updated, Some(VersionId(1))));
        assert_eq!(classify(&change(ChangeKind::Retired, 1), &facts, &both), None);
    }
}
