//! A copy kept in landdb's embedded store (a SQLite file): the agency's parcels as versions of
//! its own, with their history, so that it can run `landdb serve --database FILE` over its copy
//! (or query, export and re-share it with landdb's tools).
//!
//! Each page is one batch of the store: what it removes retired, what it adds inserted (or, when
//! the store holds a parcel of the same key, superseding it, so that the copy's history keeps the
//! lineage), and the page's token kept in the batch's summary, committed together. Each local
//! version remembers the server's version it copies (`extra.source_version`); one the server
//! sends again with another address (the agency's personal-data grant changed) is superseded by
//! a local version that has it. During a snapshot
//! that resets the copy, each batch also lists what the page sent; when the snapshot completes,
//! what none of its pages sent is retired.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use landdb_model::{BatchId, CommuneCode, LandUseCode, NationalParcelId, Parcel, ParcelKey, ReferenceData, VersionId};
use landdb_store::{AnyStore, BatchWriter, DatabaseUrl, NewBatch, ParcelStore};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::plan::Plan;

/// Where, in a local version's `extra`, the server's version it copies is kept.
const SOURCE_VERSION: &str = "source_version";

#[derive(Debug)]
pub struct EmbeddedCopy {
    store: AnyStore,
    reference: ReferenceData,
    held: Mutex<Held>,
}

/// What the copy holds, as it stood after the last page kept.
#[derive(Debug, Default)]
struct Held {
    /// Each server version held: the local version and its key.
    versions: HashMap<i64, (VersionId, ParcelKey)>,
    /// Each key held: the server version.
    keys: HashMap<ParcelKey, i64>,
    /// The batch that began the snapshot now resetting the copy.
    resetting: Option<BatchId>,
}

/// The batches of a copy of `source` are all of this source.
fn batch_source(source: &str) -> String {
    format!("landdb sync of {source}")
}

impl EmbeddedCopy {
    /// The copy in the embedded store at `path`, made if it is not there.
    pub async fn open(path: &Path) -> Result<EmbeddedCopy> {
        let url = DatabaseUrl::Sqlite(path.to_owned());
        let store = AnyStore::open(&url).await.with_context(|| format!("cannot open the embedded store {url}"))?;
        let reference = ReferenceData::embedded().context("the reference data")?;
        let mut held = Held::default();
        let mut after = None;
        loop {
            let page = store.current_page(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for v in page {
                if let Some(source) = v.parcel.extra.get(SOURCE_VERSION).and_then(Value::as_i64) {
                    held.keys.insert(v.parcel.key.clone(), source);
                    held.versions.insert(source, (v.id, v.parcel.key));
                }
            }
        }
        Ok(EmbeddedCopy { store, reference, held: Mutex::new(held) })
    }

    /// The token to go on from, when the copy follows `source`.
    pub async fn resume(&self, source: &str) -> Result<Option<String>> {
        let Some(last) = self.store.latest_batch_of(&batch_source(source)).await? else {
            if self.held.lock().await.versions.is_empty() {
                return Ok(None);
            }
            bail!("this embedded store holds a copy of another server, not of {source}: give another file");
        };
        let sync = &last.summary["sync"];
        self.held.lock().await.resetting = sync["resetting"].as_i64().map(BatchId);
        sync["token"].as_str().map(|t| Some(t.to_owned())).ok_or_else(|| anyhow!("batch {} keeps no token", last.id))
    }

    /// Applies `plan` as one batch that keeps `next`.
    pub async fn apply(&self, source: &str, plan: &Plan, next: &str) -> Result<()> {
        let mut held = self.held.lock().await;
        let quiet = plan.removals.is_empty() && plan.upserts.is_empty() && !plan.reset && !plan.sweep;
        if quiet && held.resetting.is_none() {
            // Nothing to keep but the token: the store is not written for every empty page of a
            // follower that is caught up (going on from an older token reads the same again).
            return Ok(());
        }
        let new =
            NewBatch { source: batch_source(source), province_code: None, content_hash: None, mode: "sync".to_owned() };
        let mut batch = self.store.begin_batch(new).await?;
        let resetting = if plan.reset { Some(batch.id()) } else { held.resetting };
        // What the page takes away, by key (an upsert of the same key supersedes it).
        let mut removed: HashMap<ParcelKey, VersionId> = HashMap::new();
        for r in &plan.removals {
            if let Some((local, key)) = held.versions.get(r) {
                removed.insert(key.clone(), *local);
            }
        }
        let mut inserts = Vec::new();
        let mut made: Vec<(i64, VersionId, ParcelKey)> = Vec::new();
        let mut superseded: HashSet<VersionId> = HashSet::new();
        // A version held already was kept by an earlier page (a page read again after a kill),
        // or is sent again by a snapshot after the agency's personal-data grant changed: then
        // the address it holds is another, and a new local version replaces it.
        let again: Vec<VersionId> =
            plan.upserts.iter().filter_map(|(v, _)| held.versions.get(v).map(|(local, _)| *local)).collect();
        let addresses: HashMap<VersionId, Option<String>> =
            self.store.versions(&again).await?.into_iter().map(|v| (v.id, v.parcel.address)).collect();
        for (version, feature) in &plan.upserts {
            let parcel = parcel_of(*version, feature, &self.reference)
                .with_context(|| format!("version {version} of the page"))?;
            if let Some((local, _)) = held.versions.get(version)
                && addresses.get(local).is_some_and(|a| *a == parcel.address)
            {
                continue;
            }
            let replaced = removed.remove(&parcel.key).or_else(|| {
                // A parcel of the same key the page does not remove: its removal comes later
                // (a merge's new version before the retirement of its parents) or never (a
                // copy being reset). The new version supersedes it.
                held.keys.get(&parcel.key).and_then(|v| held.versions.get(v)).map(|(local, _)| *local)
            });
            match replaced {
                Some(local) if !superseded.contains(&local) => {
                    let id = batch.supersede(&parcel, &[local]).await?;
                    superseded.insert(local);
                    made.push((*version, id, parcel.key));
                }
                _ => inserts.push((*version, parcel)),
            }
        }
        let mut retired: Vec<VersionId> = removed.into_values().collect();
        if !inserts.is_empty() {
            let parcels: Vec<Parcel> = inserts.iter().map(|(_, p)| p.clone()).collect();
            let ids = batch.insert(&parcels).await?;
            made.extend(inserts.into_iter().zip(ids).map(|((version, parcel), id)| (version, id, parcel.key)));
        }
        // What the snapshot sent, page by page; at its end, what none of its pages sent goes.
        let sent: Vec<i64> =
            if resetting.is_some() { plan.upserts.iter().map(|(v, _)| *v).collect() } else { Vec::new() };
        if plan.sweep
            && let Some(from) = resetting
        {
            let mut kept: HashSet<i64> = sent.iter().copied().collect();
            for id in from.0..batch.id().0 {
                if let Some(b) = self.store.batch(BatchId(id)).await? {
                    kept.extend(b.summary["sent"].as_array().into_iter().flatten().filter_map(Value::as_i64));
                }
            }
            retired.extend(
                held.versions
                    .iter()
                    .filter(|(v, (local, _))| !kept.contains(v) && !superseded.contains(local))
                    .map(|(_, (local, _))| *local),
            );
        }
        retired.sort_unstable();
        retired.dedup();
        if !retired.is_empty() {
            batch.retire(&retired).await?;
        }
        let still_resetting = if plan.sweep { None } else { resetting };
        let summary = json!({
            "sync": { "source": source, "token": next, "resetting": still_resetting.map(|b| b.0) },
            "sent": sent,
        });
        batch.commit(summary).await?;
        // Kept: what the copy holds follows.
        let gone: HashSet<VersionId> = retired.into_iter().chain(superseded).collect();
        let mut dropped = Vec::new();
        held.versions.retain(|version, (local, key)| {
            let keep = !gone.contains(local);
            if !keep {
                dropped.push((*version, key.clone()));
            }
            keep
        });
        for (version, key) in dropped {
            if held.keys.get(&key) == Some(&version) {
                held.keys.remove(&key);
            }
        }
        for (version, local, key) in made {
            held.keys.insert(key.clone(), version);
            held.versions.insert(version, (local, key));
        }
        held.resetting = still_resetting;
        Ok(())
    }

    /// Parcels in the copy.
    pub async fn count(&self) -> Result<u64> {
        Ok(self.store.count_current().await?)
    }
}

/// The parcel a feature of the feed describes, as the store keeps parcels: the fields the agency
/// sees (the rest empty), the boundary, and the server's version in `extra`.
fn parcel_of(version: i64, feature: &Value, reference: &ReferenceData) -> Result<Parcel> {
    let properties = &feature["properties"];
    let text = |name: &str| {
        properties[name]
            .as_str()
            .ok_or_else(|| anyhow!("the feature has no `{name}` (is the agency's policy narrower than a copy needs?)"))
    };
    let commune = CommuneCode::parse(text("commune")?)?;
    // A commune code as received (a pre-2025 code kept on older parcels) is of the province
    // that owned its number.
    let province = reference
        .province_of(&commune)
        .ok_or_else(|| anyhow!("commune {commune} is in no province of the reference data"))?;
    let land_use = properties["land_use"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(LandUseCode::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let geometry: geojson::Geometry = serde_json::from_value(feature["geometry"].clone())?;
    let geometry: geo::Geometry<f64> = geometry.try_into().context("the boundary")?;
    let geometry = match geometry {
        geo::Geometry::MultiPolygon(m) => m,
        geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
        _ => bail!("the boundary is not a polygon"),
    };
    let mut extra = serde_json::Map::new();
    extra.insert(SOURCE_VERSION.to_owned(), version.into());
    Ok(Parcel {
        national_id: NationalParcelId::parse(text("national_id")?)?,
        key: ParcelKey::new(commune.clone(), text("sheet")?, text("number")?),
        commune_code_received: commune.as_str().to_owned(),
        province,
        land_use,
        legal_area_m2: None,
        measured_area_m2: None,
        geometry_area_m2: properties["area_m2"].as_f64().unwrap_or_default(),
        address: properties["address"].as_str().map(str::to_owned),
        certificate_no: None,
        geometry,
        source_crs: None,
        extra,
        right_holders: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(commune: &str) -> Value {
        json!({
            "type": "Feature",
            "id": 7,
            "geometry": { "type": "Polygon", "coordinates": [[[108.2, 16.0], [108.201, 16.0], [108.201, 16.001], [108.2, 16.0]]] },
            "properties": {
                "version": 7, "national_id": "w6ugjkr525ux", "commune": commune, "sheet": "12", "number": "34",
                "land_use": ["ODT", "CLN"], "area_m2": 5234.5, "address": "Số 1 Hải Phòng"
            }
        })
    }

    /// A feature reads back as the parcel it describes; a pre-2025 commune code (Đà Nẵng's
    /// parcels carry 20203) is of the province that owned its number.
    #[test]
    fn a_feature_becomes_the_parcel_it_describes() {
        let reference = ReferenceData::embedded().expect("reference");
        for commune in ["20194", "20203"] {
            let p = parcel_of(7, &feature(commune), &reference).expect("a parcel");
            assert_eq!(p.key.commune.as_str(), commune);
            assert_eq!(p.province.as_str(), "48");
            assert_eq!((p.key.sheet.as_str(), p.key.number.as_str()), ("12", "34"));
            assert_eq!(p.land_use.iter().map(|u| u.as_str()).collect::<Vec<_>>(), ["ODT", "CLN"]);
            assert_eq!(p.geometry_area_m2, 5234.5);
            assert_eq!(p.address.as_deref(), Some("Số 1 Hải Phòng"));
            assert_eq!(p.geometry.0.len(), 1);
            assert_eq!(p.extra[SOURCE_VERSION], 7);
        }
        let mut hidden = feature("20194");
        hidden["properties"].as_object_mut().expect("properties").remove("address");
        assert_eq!(parcel_of(7, &hidden, &reference).expect("a parcel").address, None);
        let mut broken = feature("20194");
        broken["properties"]["commune"] = json!(null);
        let e = parcel_of(7, &broken, &reference).expect_err("no commune");
        assert!(e.to_string().contains("commune"), "{e}");
    }
}
