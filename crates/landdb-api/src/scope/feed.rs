//! The change feed as one caller sees it: the national feed read from the store and turned into
//! the caller's events ([`crate::feed::events`]), and snapshots of the caller's parcels at a
//! fixed feed position. Like every method of [`Scoped`], nothing here yields a parcel, a version
//! or a lineage link outside the caller's area.

use std::collections::HashSet;

use landdb_engine::{ParcelRecord, Snapshot};
use landdb_store::{ChangeKind, ParcelChange};

use super::*;
use crate::feed::events::{Event, Facts, classify};

/// Changes read from the store at a time.
const READ: usize = 2_000;
/// Changes of the national feed one answer reads at most, seen by the caller or not: a follower
/// far behind catches up over several answers, none of which takes long.
const SCAN: usize = 50_000;
/// Changes a snapshot page undoes at most (those committed since the snapshot's position): a
/// snapshot read more slowly than the country changes starts again.
const UNDO: usize = 500_000;
/// Parcels a page of a move between scopes looks at, at most, when one of them is the nation:
/// so many for each event the page may hold, and no more than `RESCOPE_SCAN`.
const RESCOPE_SCAN_A_MOVE: usize = 200;
const RESCOPE_SCAN: usize = 200_000;

/// A page of a caller's events.
#[derive(Debug)]
pub struct ChangePage {
    pub events: Vec<Event>,
    /// The versions the events add, as the engine holds parcels (for the answer writers).
    pub added: Snapshot,
    /// The last change of the national feed read: where the next page starts.
    pub position: FeedPosition,
    /// Whether the page reached the end of the feed.
    pub caught_up: bool,
}

/// A page of a caller's snapshot: versions the engine holds and versions read from the store
/// (current at the snapshot's position, retired since), in version order.
#[derive(Debug)]
pub struct SnapshotPage<'v> {
    held: Vec<Parcel<'v>>,
    stored: Snapshot,
    /// Whether the snapshot has more after this page.
    pub more: bool,
}

/// What a snapshot undoes: see [`Scoped::undo_since`].
struct Undone {
    made: HashSet<VersionId>,
    restored: Vec<ParcelVersion>,
}

/// Keeps the first `limit` of `held` and `restored` (both in version order) taken together, in
/// version order; whether either had more.
fn first_of_both(held: &mut Vec<Parcel<'_>>, restored: &mut Vec<ParcelVersion>, limit: usize) -> bool {
    let (mut h, mut r) = (0, 0);
    while h + r < limit && (h < held.len() || r < restored.len()) {
        let take_held = r >= restored.len() || (h < held.len() && held[h].version() < restored[r].id);
        if take_held { h += 1 } else { r += 1 }
    }
    let more = h < held.len() || r < restored.len();
    held.truncate(h);
    restored.truncate(r);
    more
}

/// Why a snapshot page cannot be read here.
#[derive(Debug)]
pub enum SnapshotGap {
    /// This server's engine has not yet reached the snapshot's position (another server, ahead
    /// of it, began the snapshot).
    Behind,
    /// Too much changed since the snapshot's position.
    Expired,
}

impl Scoped<'_> {
    /// The caller's events after `after`, at most `limit` of them.
    pub async fn changes(&self, after: FeedPosition, limit: usize) -> Result<ChangePage, ApiError> {
        let store = self.sources.store()?;
        let mut page =
            ChangePage { events: Vec::new(), added: Snapshot::build([], after), position: after, caught_up: false };
        let mut added = Vec::new();
        let mut scanned = 0;
        'read: while scanned < SCAN {
            let changes = store.changes_since(page.position, READ).await.map_err(|e| internal(&e))?;
            let facts = self.facts(&changes).await?;
            for change in &changes {
                page.position = change.position;
                if let Some(event) = classify(change, &facts, &|v: &ParcelVersion| self.sees_version(v)) {
                    if event.kind.adds()
                        && let Some(v) = facts.versions.get(&event.version)
                    {
                        added.push(ParcelRecord::from(v.clone()));
                    }
                    page.events.push(event);
                    if page.events.len() >= limit {
                        break 'read;
                    }
                }
            }
            if changes.len() < READ {
                page.caught_up = true;
                break;
            }
            scanned += changes.len();
        }
        page.added = Snapshot::build(added, page.position);
        Ok(page)
    }

    /// What the store says of the versions `changes` name: them, their parents and children.
    async fn facts(&self, changes: &[ParcelChange]) -> Result<Facts, ApiError> {
        let store = self.sources.store()?;
        let named: Vec<VersionId> = changes.iter().map(|c| c.version).collect();
        let retired: Vec<VersionId> =
            changes.iter().filter(|c| c.kind == ChangeKind::Retired).map(|c| c.version).collect();
        let mut facts = Facts::default();
        for v in store.versions(&named).await.map_err(|e| internal(&e))? {
            facts.versions.insert(v.id, v);
        }
        for (parent, child) in store.children_of(&retired).await.map_err(|e| internal(&e))? {
            facts.children.entry(parent).or_default().push(child);
        }
        let related: HashSet<VersionId> = facts
            .versions
            .values()
            .flat_map(|v| v.lineage.iter().copied())
            .chain(facts.children.values().flatten().copied())
            .filter(|v| !facts.versions.contains_key(v))
            .collect();
        let related: Vec<VersionId> = related.into_iter().collect();
        for v in store.versions(&related).await.map_err(|e| internal(&e))? {
            facts.versions.insert(v.id, v);
        }
        Ok(facts)
    }

    /// The caller's parcels as they were at feed position `at`, in version order after `after`,
    /// at most `limit`. The engine holds them as they are now: what changed since `at` is undone
    /// (versions made since are left out, versions retired since are read back from the store),
    /// so that every page of one snapshot is of the same moment, however long it takes to read.
    pub async fn snapshot(
        &self,
        at: FeedPosition,
        after: Option<VersionId>,
        limit: usize,
    ) -> Result<Result<SnapshotPage<'_>, SnapshotGap>, ApiError> {
        let Undone { made, mut restored } = match self.undo_since(at, after, &|v| self.sees_version(v)).await? {
            Ok(undone) => undone,
            Err(gap) => return Ok(Err(gap)),
        };
        // The engine's parcels after `after`, less those made since `at`; merged with the
        // restored ones in version order, until the page and one more are found.
        let unmade_since = |p: &Parcel<'_>| !made.contains(&p.version());
        let mut held: Vec<Parcel<'_>> = match self.everything_after(after) {
            Some(all) => all.filter(unmade_since).take(limit + 1).collect(),
            None => {
                // The caller's versions in order, worked out once a feed position (a snapshot's
                // pages are read one after another at the same position, as a rule).
                let order = self.sources.orders.get_or(&self.access.caller, (), self.view.position(), || {
                    let mut versions: Vec<VersionId> = self.all().iter().map(|p| p.version()).collect();
                    versions.sort_unstable();
                    Arc::new(versions)
                });
                let start = after.map_or(0, |a| order.partition_point(|v| *v <= a));
                order[start..]
                    .iter()
                    .filter(|v| !made.contains(v))
                    .filter_map(|v| self.view.by_version(*v))
                    .take(limit + 1)
                    .collect()
            }
        };
        let more = first_of_both(&mut held, &mut restored, limit);
        let stored = Snapshot::build(restored.into_iter().map(ParcelRecord::from), at);
        Ok(Ok(SnapshotPage { held, stored, more }))
    }

    /// What changed between feed position `at` and the engine's: the versions made since (to
    /// leave out of what the engine holds), and the versions current at `at` and retired since,
    /// after `after`, that `wanted` (read back from the store, in version order).
    async fn undo_since(
        &self,
        at: FeedPosition,
        after: Option<VersionId>,
        wanted: &(dyn Fn(&ParcelVersion) -> bool + Sync),
    ) -> Result<Result<Undone, SnapshotGap>, ApiError> {
        let here = self.position();
        if here < at {
            return Ok(Err(SnapshotGap::Behind));
        }
        let store = self.sources.store()?;
        let (mut made, mut unmade) = (HashSet::new(), Vec::new());
        let mut read = at;
        while read < here {
            let changes = store.changes_since(read, 10_000).await.map_err(|e| internal(&e))?;
            let Some(last) = changes.last() else { break };
            read = last.position;
            for c in changes.iter().filter(|c| c.position <= here) {
                match c.kind {
                    ChangeKind::Created => made.insert(c.version),
                    ChangeKind::Retired => {
                        unmade.push(c.version);
                        true
                    }
                };
            }
            if made.len() + unmade.len() > UNDO {
                return Ok(Err(SnapshotGap::Expired));
            }
        }
        unmade.retain(|v| !made.contains(v) && after.is_none_or(|a| *v > a));
        let mut restored: Vec<ParcelVersion> = store.versions(&unmade).await.map_err(|e| internal(&e))?;
        restored.retain(|v| wanted(v));
        restored.sort_by_key(|v| v.id);
        Ok(Ok(Undone { made, restored }))
    }

    /// The parcels of feed position `at` that a copy made under the scope `before` gains or loses
    /// on moving to the caller's: in version order after `after`, at most `limit`, each with
    /// whether it entered (then it is among the page's parcels) or left. Read like a snapshot
    /// (what changed since `at` undone), over the parcels of either scope.
    pub async fn rescope(
        &self,
        at: FeedPosition,
        after: Option<VersionId>,
        before: &Scope,
        limit: usize,
    ) -> Result<Result<(SnapshotPage<'_>, Vec<(VersionId, bool)>, Option<VersionId>), SnapshotGap>, ApiError> {
        let moved_version = |v: &ParcelVersion| {
            before.sees(&v.parcel.key.commune, || v.parcel.geometry.clone()) != self.sees_version(v)
        };
        let Undone { made, mut restored } = match self.undo_since(at, after, &moved_version).await? {
            Ok(undone) => undone,
            Err(gap) => return Ok(Err(gap)),
        };
        let moved = |p: &Parcel<'_>| {
            after.is_none_or(|a| p.version() > a)
                && !made.contains(&p.version())
                && before.sees(p.commune(), || p.geometry()) != self.sees(p)
        };
        // Over the whole country, a page looks at no more than `RESCOPE_SCAN_A_MOVE` parcels a
        // move asked for, `RESCOPE_SCAN` in all (a move between two large areas that differ
        // little finds few): then it ends where it stopped.
        let mut stopped_at = None;
        let mut held: Vec<Parcel<'_>> = if self.everything() || before.is_nation() {
            let mut found = Vec::new();
            let most = limit.saturating_mul(RESCOPE_SCAN_A_MOVE).min(RESCOPE_SCAN);
            for (looked, p) in self.view.parcels_after(after).enumerate() {
                if looked == most {
                    stopped_at = Some(p.version());
                    break;
                }
                if moved(&p) {
                    found.push(p);
                    if found.len() > limit {
                        break;
                    }
                }
            }
            found
        } else {
            let mut either = self.all();
            either.extend(in_scope(&self.view, before));
            either.retain(|p| moved(p));
            either.sort_unstable_by_key(Parcel::version);
            either.dedup_by_key(|p| p.version());
            either
        };
        if let Some(stop) = stopped_at {
            // Versions read back from the store lie between those looked at, or after.
            restored.retain(|v| v.id < stop);
        }
        let more = first_of_both(&mut held, &mut restored, limit) || stopped_at.is_some();
        let mut moves: Vec<(VersionId, bool)> = held
            .iter()
            .map(|p| (p.version(), self.sees(p)))
            .chain(restored.iter().map(|v| (v.id, self.sees_version(v))))
            .collect();
        moves.sort_unstable();
        held.retain(|p| self.sees(p));
        restored.retain(|v| self.sees_version(v));
        let stored = Snapshot::build(restored.into_iter().map(ParcelRecord::from), at);
        // The next page goes on after the last move, or after what this page looked at.
        let through = match (moves.last(), stopped_at) {
            (_, Some(stop)) if moves.len() < limit => Some(VersionId(stop.0 - 1)),
            (Some((last, _)), _) => Some(*last),
            (None, _) => after,
        };
        Ok(Ok((SnapshotPage { held, stored, more }, moves, through)))
    }

    /// The parcels of a snapshot page, in version order.
    pub fn snapshot_parcels<'p>(&'p self, page: &'p SnapshotPage<'p>) -> Vec<Parcel<'p>> {
        if page.stored.parcels().next().is_none() {
            return page.held.clone();
        }
        let mut parcels: Vec<Parcel<'p>> = page.held.iter().cloned().chain(page.stored.parcels()).collect();
        parcels.sort_unstable_by_key(|p| p.version());
        parcels
    }
}
