//! Defects injected on request, each recorded in the manifest with the keys of the records it
//! touched, so that tests know exactly what an importer must find.

use std::collections::BTreeMap;

use clap::ValueEnum;
use geo::{Coord, LineString, Polygon, Validation};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Defect {
    /// Two consecutive vertices swapped: the boundary crosses itself (invalid).
    SelfIntersection,
    /// The closing vertex dropped.
    UnclosedRing,
    /// The exterior ring clockwise (RFC 7946 and OGC want it counter-clockwise).
    WrongOrientation,
    /// A vertex that shoots 10 m out and comes back (invalid).
    Spike,
    /// A vertex repeated.
    DuplicateVertex,
    NullGeometry,
    /// The sheet and parcel number of another record of the same commune.
    DuplicateKey,
    /// A vertex pushed 2 m into the neighbouring parcel.
    Overlap,
    /// A vertex pulled 3 cm back, leaving a sliver gap with the neighbour.
    Sliver,
    UnknownLandUse,
    /// The commune code of an old commune merged into this one.
    ObsoleteCommuneCode,
}

impl Defect {
    pub fn all() -> &'static [Self] {
        Self::value_variants()
    }
}

/// How many of each defect to inject per commune.
#[derive(Debug, Clone, Default)]
pub struct DefectPlan(pub BTreeMap<Defect, usize>);

impl DefectPlan {
    /// `self_intersection=3,null_geometry=2`, or `all=2` for two of every kind.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut plan = BTreeMap::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, count) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected name=count"))?;
            let count: usize = count.trim().parse().map_err(|_| format!("{part:?}: count is not a number"))?;
            if name.trim() == "all" {
                plan.extend(Defect::all().iter().map(|d| (*d, count)));
            } else {
                let defect = Defect::from_str(name.trim(), true).map_err(|e| format!("{name}: {e}"))?;
                plan.insert(defect, count);
            }
        }
        Ok(Self(plan))
    }
}

/// What was injected: defect → keys of the records it touched (after injection).
pub type Injected = BTreeMap<Defect, Vec<String>>;

fn polygon(ring: &[Coord<f64>]) -> Polygon<f64> {
    Polygon::new(LineString(ring.to_vec()), vec![])
}

fn centroid(ring: &[Coord<f64>]) -> Coord<f64> {
    let n = ring.len().saturating_sub(1).max(1) as f64;
    let (x, y) = ring.iter().take(ring.len().saturating_sub(1).max(1)).fold((0.0, 0.0), |(x, y), c| (x + c.x, y + c.y));
    Coord { x: x / n, y: y / n }
}

/// Moves vertex `i` (and, if it is the first, the closing copy) by `metres` away from the centroid.
fn push_vertex(ring: &mut [Coord<f64>], i: usize, metres: f64) {
    let c = centroid(ring);
    let v = ring[i];
    let (dx, dy) = (v.x - c.x, v.y - c.y);
    let len = dx.hypot(dy).max(1e-9);
    let moved = Coord { x: v.x + dx / len * metres, y: v.y + dy / len * metres };
    ring[i] = moved;
    let last = ring.len() - 1;
    if i == 0 {
        ring[last] = moved;
    }
}

/// Applies one defect to `r`; false if this record cannot carry it.
fn apply<R: Rng>(rng: &mut R, defect: Defect, r: &mut Record, others: &[(u32, u32)], obsolete: &[String]) -> bool {
    match defect {
        Defect::NullGeometry => r.ring.take().is_some(),
        Defect::UnknownLandUse => {
            r.land_use = ["QQQ", "ZZA", "ODX"][rng.gen_range(0..3)].to_owned();
            true
        }
        Defect::ObsoleteCommuneCode => match obsolete.get(rng.gen_range(0..obsolete.len().max(1))) {
            Some(code) => {
                r.commune_code = code.clone();
                true
            }
            None => false,
        },
        Defect::DuplicateKey => match others.iter().find(|k| **k != (r.sheet, r.number)) {
            Some(&(sheet, number)) => {
                (r.sheet, r.number) = (sheet, number);
                true
            }
            None => false,
        },
        geometric => {
            let Some(ring) = r.ring.as_mut() else { return false };
            if ring.len() < 5 {
                return false;
            }
            match geometric {
                Defect::SelfIntersection => {
                    ring.swap(1, 2);
                    !polygon(ring).is_valid()
                }
                Defect::Spike => {
                    let c = centroid(ring);
                    let v = ring[1];
                    let (dx, dy) = (v.x - c.x, v.y - c.y);
                    let len = dx.hypot(dy).max(1e-9);
                    let tip = Coord { x: v.x + dx / len * 10.0, y: v.y + dy / len * 10.0 };
                    ring.splice(2..2, [tip, v]);
                    !polygon(ring).is_valid()
                }
                Defect::UnclosedRing => ring.pop().is_some(),
                Defect::WrongOrientation => {
                    ring.reverse();
                    true
                }
                Defect::DuplicateVertex => {
                    let v = ring[1];
                    ring.insert(1, v);
                    true
                }
                Defect::Overlap => {
                    push_vertex(ring, 1, 2.0);
                    polygon(ring).is_valid()
                }
                Defect::Sliver => {
                    push_vertex(ring, 1, -0.03);
                    polygon(ring).is_valid()
                }
                _ => false,
            }
        }
    }
}

/// Injects `plan` into one commune's records, each defect into records not yet touched, and
/// records what it did. `obsolete` lists old commune codes merged into this commune.
pub fn inject<R: Rng>(
    rng: &mut R,
    records: &mut [Record],
    plan: &DefectPlan,
    obsolete: &[String],
    injected: &mut Injected,
) {
    // The first records lend their keys to duplicates, so they carry no defect themselves.
    let lenders = (records.len() / 10).min(50);
    let keys: Vec<(u32, u32)> = records.iter().take(lenders).map(|r| (r.sheet, r.number)).collect();
    let mut order: Vec<usize> = (lenders..records.len()).collect();
    order.shuffle(rng);
    for (&defect, &count) in &plan.0 {
        let mut done = 0;
        while done < count {
            let Some(i) = order.pop() else { return };
            let mut candidate = records[i].clone();
            if apply(rng, defect, &mut candidate, &keys, obsolete) {
                injected.entry(defect).or_default().push(candidate.key());
                records[i] = candidate;
                done += 1;
            }
        }
    }
}
