//! What a page of the change feed does to a copy: pure logic, apart from how a copy is kept.
//!
//! A page's events are folded into their net effect (a version added then removed in one page
//! is simply absent), so a copy can apply a page as one set of removals and one set of upserts,
//! in any order, inside one transaction with the page's token.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A page of the feed, as the server sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub changes: Vec<Change>,
    pub next: String,
    pub phase: String,
    #[serde(default)]
    pub reset: bool,
    #[serde(default, rename = "snapshotComplete")]
    pub snapshot_complete: bool,
    #[serde(default, rename = "caughtUp")]
    pub caught_up: bool,
}

/// One event of the feed.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    pub kind: String,
    pub id: i64,
    #[serde(default)]
    pub replaces: Option<i64>,
    #[serde(default)]
    pub feature: Option<Value>,
}

/// What a page does to a copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The page begins a snapshot that replaces the copy: what the snapshot does not send
    /// again is dropped when it completes.
    pub reset: bool,
    /// Versions to remove.
    pub removals: Vec<i64>,
    /// Versions to add or replace, with their features.
    pub upserts: Vec<(i64, Value)>,
    /// The snapshot completes with this page: drop what it did not send.
    pub sweep: bool,
    /// What the page held, by kind of event.
    pub counts: Counts,
}

/// Events by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub snapshot: u64,
    pub created: u64,
    pub updated: u64,
    pub entered: u64,
    pub retired: u64,
    pub left: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.snapshot += other.snapshot;
        self.created += other.created;
        self.updated += other.updated;
        self.entered += other.entered;
        self.retired += other.retired;
        self.left += other.left;
    }

    pub fn changes(&self) -> u64 {
        self.created + self.updated + self.entered + self.retired + self.left
    }
}

/// Why a page cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("event {kind} of version {id} has no feature")]
    NoFeature { kind: String, id: i64 },
    #[error("unknown kind of event {0:?} (is this client older than the server?)")]
    UnknownKind(String),
}

/// The net effect of `page`.
pub fn plan(page: &Page) -> Result<Plan, PlanError> {
    let mut net: BTreeMap<i64, Option<&Value>> = BTreeMap::new();
    let mut counts = Counts::default();
    for c in &page.changes {
        let counter = match c.kind.as_str() {
            "snapshot" => &mut counts.snapshot,
            "created" => &mut counts.created,
            "updated" => &mut counts.updated,
            "entered" => &mut counts.entered,
            "retired" => &mut counts.retired,
            "left" => &mut counts.left,
            other => return Err(PlanError::UnknownKind(other.to_owned())),
        };
        *counter += 1;
        match c.kind.as_str() {
            "retired" | "left" => {
                net.insert(c.id, None);
            }
            _ => {
                if let Some(r) = c.replaces {
                    net.insert(r, None);
                }
                let feature =
                    c.feature.as_ref().ok_or_else(|| PlanError::NoFeature { kind: c.kind.clone(), id: c.id })?;
                net.insert(c.id, Some(feature));
            }
        }
    }
    let mut plan = Plan { reset: page.reset, sweep: page.snapshot_complete, counts, ..Plan::default() };
    for (id, feature) in net {
        match feature {
            None => plan.removals.push(id),
            Some(f) => plan.upserts.push((id, f.clone())),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn change(kind: &str, id: i64, replaces: Option<i64>) -> Change {
        let feature = (!matches!(kind, "retired" | "left")).then(|| json!({ "id": id }));
        Change { kind: kind.to_owned(), id, replaces, feature }
    }

    proptest! {
        /// Applying a page's plan to a copy gives the copy that applying its events one by one
        /// gives, whatever the events.
        #[test]
        fn the_plan_is_the_events_net_effect(
            held in proptest::collection::btree_set(0i64..20, 0..10),
            events in proptest::collection::vec((0usize..6, 0i64..20, proptest::option::of(0i64..20)), 0..30),
        ) {
            let kinds = ["snapshot", "created", "updated", "entered", "retired", "left"];
            let changes: Vec<Change> = events.iter().map(|(k, id, r)| change(kinds[*k], *id, if *k == 2 { *r } else { None })).collect();
            let page = Page { changes: changes.clone(), next: String::new(), phase: "changes".into(), reset: false, snapshot_complete: false, caught_up: false };
            let mut one_by_one = held.clone();
            for c in &changes {
                if let Some(r) = c.replaces { one_by_one.remove(&r); }
                if c.feature.is_some() { one_by_one.insert(c.id); } else { one_by_one.remove(&c.id); }
            }
            let plan = plan(&page).expect("a plan");
            let mut planned = held;
            for r in &plan.removals { planned.remove(r); }
            for (id, _) in &plan.upserts { planned.insert(*id); }
            prop_assert_eq!(planned, one_by_one);
        }
    }

    #[test]
    fn an_unknown_kind_is_refused_by_name() {
        let page = Page {
            changes: vec![change("moved", 1, None)],
            next: String::new(),
            phase: "changes".into(),
            reset: false,
            snapshot_complete: false,
            caught_up: false,
        };
        assert!(plan(&page).expect_err("refused").to_string().contains("moved"));
    }
}
