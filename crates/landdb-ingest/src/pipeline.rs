//! The import pipeline without the store: every layer of every file read in chunks, each chunk
//! normalised in parallel (rayon) and handed on at once ([`stream`]); a [`Ledger`] keeps every
//! record's verdict compactly and, at the end, runs the checks that need the whole upload
//! (duplicate keys, overlaps). `landdb validate` is exactly this ([`run`]); `landdb import` loads
//! each chunk while the next is read.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use landdb_model::{ParcelKey, ReferenceData};
use rayon::prelude::*;
use serde::Serialize;

use crate::SourceError;
use crate::area::WriteArea;
use crate::crs::{CrsChoice, from_declared, looks_geographic};
use crate::names::SourceNames;
use crate::normalize::{Normalizer, Outcome};
use crate::profiles::FieldMapping;
use crate::source::{self, EncodingFound, SourceGeometry, SourceLayer, SourceRecord};
use crate::verdict::{Reason, ReasonCode, Verdict};

/// Records read per chunk: enough to keep both cores busy, few enough to bound memory.
pub const CHUNK: usize = 8_192;

#[derive(Debug, Clone)]
pub struct Options {
    /// `--crs`: wins over whatever the files say.
    pub crs_override: Option<CrsChoice>,
    pub mapping: FieldMapping,
    /// The communes the upload may change (an uploader's area), when it is confined: a record of
    /// any other commune is rejected and quarantined with its reason (see [`crate::area`]; a
    /// replace-commune import naming one is refused whole).
    pub area: Option<std::sync::Arc<std::collections::HashSet<landdb_model::CommuneCode>>>,
}

/// One normalised record with where it came from; rejected ones keep their source for quarantine.
#[derive(Debug, Clone)]
pub struct Processed {
    pub file: PathBuf,
    pub layer: String,
    pub outcome: Outcome,
    pub source: Option<SourceRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub file: PathBuf,
    pub layer: String,
    pub driver: String,
    pub features: u64,
    pub crs: String,
    /// `declared`, `parameters` (a zone recognised from a .prj naming no EPSG code), `override`,
    /// `inferred from commune NNNNN`, or `commune zone over declared …`.
    pub crs_basis: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<EncodingFound>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    pub file: PathBuf,
    pub layer: String,
    pub feature: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
}

/// The report of a validation or import. The four verdict totals always add up to `input`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub input: usize,
    pub accepted: usize,
    pub accepted_with_warnings: usize,
    pub repaired: usize,
    pub rejected: usize,
    /// Records per reason code (a record can have several).
    pub reasons: BTreeMap<ReasonCode, usize>,
    pub layers: Vec<LayerReport>,
    /// Every record that is not plainly accepted, with its reasons.
    pub records: Vec<RecordReport>,
    /// Set by an import: the batch that committed, or the earlier one that had the same content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<serde_json::Value>,
}

impl ImportReport {
    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} records: {} accepted, {} accepted with warnings, {} repaired, {} rejected\n",
            self.input, self.accepted, self.accepted_with_warnings, self.repaired, self.rejected
        );
        for layer in &self.layers {
            s.push_str(&format!(
                "  {} [{}]: {} features, {} ({}){}\n",
                layer.file.display(),
                layer.layer,
                layer.features,
                layer.crs,
                layer.crs_basis,
                layer.encoding.as_ref().map_or(String::new(), |e| format!(", text {} ({})", e.encoding, e.basis))
            ));
        }
        for (code, n) in &self.reasons {
            s.push_str(&format!(
                "  {n:>7} {}\n",
                serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            ));
        }
        s
    }
}

/// The first commune code and coordinate of a chunk, for inferring or checking its zone.
fn first_commune_and_coord(records: &[SourceRecord], mapping: &FieldMapping) -> (Option<String>, Option<(f64, f64)>) {
    let commune = records.iter().find_map(|r| {
        r.attributes
            .iter()
            .find(|(n, _)| mapping.canonical(n) == Some(crate::profiles::Canonical::CommuneCode))
            .and_then(|(_, v)| v.text())
    });
    let coord = records.iter().find_map(|r| match &r.geometry {
        SourceGeometry::Polygons(p) => p.first()?.first()?.first().map(|c| (c.x, c.y)),
        _ => None,
    });
    (commune, coord)
}

/// The province a delivery (a file, folder or archive, expanded under `scratch`) is for: that of
/// the commune its first record names. `None` when no first record names a known commune (an
/// unreadable or empty file, a key in another column): such deliveries are imported together.
pub fn province_of(
    path: &Path,
    scratch: &Path,
    reference: &ReferenceData,
    options: &Options,
) -> Option<landdb_model::ProvinceCode> {
    let paths = [path.to_owned()];
    let files = source::expand(&paths, scratch, &SourceNames::as_given(&paths)).ok()?;
    let file = files.first()?;
    let layer = source::layers(file).ok()?.into_iter().next()?;
    let mut first = Vec::new();
    // The first record is all it takes: the reader is stopped there.
    let _ = source::read_layer(&layer, 1, |chunk| {
        first = chunk;
        Err(SourceError::Unreadable { file: file.clone(), reason: "read no further".into() })
    });
    let (commune, _) = first_commune_and_coord(&first, &options.mapping);
    reference.province_of(&landdb_model::CommuneCode::parse(commune?.trim()).ok()?)
}

/// Chooses the layer's CRS: the override; else the declared one (a TM-3 zone that disagrees with
/// the commune's zone yields to it, with a warning); else the commune's zone, with a warning.
fn choose_crs(
    layer: &SourceLayer,
    first: &[SourceRecord],
    reference: &ReferenceData,
    options: &Options,
) -> (Option<CrsChoice>, String, Option<Reason>) {
    if let Some(c) = &options.crs_override {
        return (Some(c.clone()), "override".into(), None);
    }
    let (commune, coord) = first_commune_and_coord(first, &options.mapping);
    let commune_zone = commune
        .as_deref()
        .and_then(|c| landdb_model::CommuneCode::parse(c).ok())
        .and_then(|c| reference.zone_of_commune(&c).map(|z| (c, z)));
    let declared = from_declared(&layer.crs, reference)
        // A file that claims WGS84 (GeoJSON always does) but holds metres is undeclared.
        .filter(|c| *c != CrsChoice::Wgs84 || coord.is_none_or(|(x, y)| looks_geographic(x, y)));
    match (declared, commune_zone) {
        (Some(CrsChoice::Zone(z)), Some((code, cz))) if z.epsg != cz.epsg => {
            let note = format!(
                "the file says {} but commune {code} lies in {}; read as {}",
                z.crs_name(),
                cz.crs_name(),
                cz.crs_name()
            );
            (
                Some(CrsChoice::Zone(cz)),
                format!("commune zone over declared {}", z.crs_name()),
                Some(Reason::new(ReasonCode::CrsInferred, note)),
            )
        }
        (Some(c), _) => {
            let basis = if layer.crs.epsg.is_some() { "declared" } else { "parameters" };
            (Some(c), basis.into(), None)
        }
        (None, Some((code, zone))) => {
            let note =
                format!("the file declares no usable CRS; read in {} as the zone of commune {code}", zone.crs_name());
            (
                Some(CrsChoice::Zone(zone)),
                format!("inferred from commune {code}"),
                Some(Reason::new(ReasonCode::CrsInferred, note)),
            )
        }
        (None, None) => (None, "none".into(), None),
    }
}

/// Reads and judges everything under `paths` without a store: the report of `landdb validate`.
pub fn run(
    paths: &[PathBuf],
    scratch: &Path,
    reference: &ReferenceData,
    options: &Options,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ImportReport, SourceError> {
    let ledger = Mutex::new(Ledger::default());
    let names = SourceNames::as_given(paths);
    let layers = stream(paths, scratch, &names, reference, options, progress, &|chunk| {
        ledger.lock().map_err(|_| stopped(paths))?.record(&chunk);
        Ok(())
    })?;
    let mut ledger = ledger.into_inner().map_err(|_| stopped(paths))?;
    ledger.finish();
    Ok(ledger.report(layers))
}

fn stopped(paths: &[PathBuf]) -> SourceError {
    SourceError::Unreadable { file: paths.first().cloned().unwrap_or_default(), reason: "the import stopped".into() }
}

/// Reads and normalises everything under `paths`, handing each chunk to `sink` as soon as it is
/// judged (files in parallel, the chunks of one layer in order). `progress` is told the records
/// done so far. Returns what was found about each layer. Records, layers and errors name their
/// files as `names` shows them.
pub fn stream(
    paths: &[PathBuf],
    scratch: &Path,
    names: &SourceNames,
    reference: &ReferenceData,
    options: &Options,
    progress: &(dyn Fn(usize) + Sync),
    sink: &(dyn Fn(Vec<Processed>) -> Result<(), SourceError> + Sync),
) -> Result<Vec<LayerReport>, SourceError> {
    let files = source::expand(paths, scratch, names).map_err(|e| names.error(e))?;
    if files.is_empty() {
        return Err(names.error(SourceError::Unreadable {
            file: paths.first().cloned().unwrap_or_default(),
            reason: "no cadastral file (.shp, .gpkg, .geojson, .json, .dxf, .dgn, .tab, .kml, .csv, .zip) found".into(),
        }));
    }
    // Files in parallel (each with its own GDAL dataset), records of a file in parallel too.
    let done = AtomicUsize::new(0);
    let per_file: Vec<Vec<LayerReport>> = files
        .par_iter()
        .map(|file| {
            read_file(file, &names.shown_path(file), reference, options, &done, progress, sink)
                .map_err(|e| names.error(e))
        })
        .collect::<Result<_, _>>()?;
    Ok(per_file.into_iter().flatten().collect())
}

/// Every layer of one file, read and normalised; `shown` is the file's name in what is reported.
fn read_file(
    file: &Path,
    shown: &Path,
    reference: &ReferenceData,
    options: &Options,
    done: &AtomicUsize,
    progress: &(dyn Fn(usize) + Sync),
    sink: &(dyn Fn(Vec<Processed>) -> Result<(), SourceError> + Sync),
) -> Result<Vec<LayerReport>, SourceError> {
    let file = &file.to_path_buf();
    let area = WriteArea::new(options.area.as_ref(), reference);
    let mut layers = Vec::new();
    for mut layer in source::layers(file)? {
        if layer.driver == "ESRI Shapefile"
            && let Ok(dbf) = source::dbf::Dbf::open(&file.with_extension("dbf"))
        {
            layer.encoding = Some(source::shapefile_encoding(&dbf, file).1);
        }
        let mut decided: Option<(Option<CrsChoice>, String, Option<Reason>)> = None;
        let mut features = 0u64;
        // GDAL reads on its own thread (its objects never leave it) while the chunk before is
        // normalised here on every core.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<SourceRecord>>(2);
            let layer_ref = &layer;
            // CAD labels must meet their polylines: such layers come in one piece.
            let cad = matches!(layer_ref.driver.as_str(), "DXF" | "DGN");
            let reader = scope.spawn(move || {
                source::read_layer(layer_ref, if cad { usize::MAX } else { CHUNK }, |chunk| {
                    let chunk = if cad { source::labels::attach(chunk) } else { chunk };
                    // The receiver only goes away if normalising panicked.
                    tx.send(chunk).map_err(|_| SourceError::Unreadable {
                        file: layer_ref.file.clone(),
                        reason: "the import stopped".into(),
                    })
                })
            });
            for chunk in rx {
                let (crs, _, note) = decided.get_or_insert_with(|| choose_crs(&layer, &chunk, reference, options));
                let outcomes: Vec<Outcome> = match crs {
                    Some(crs) => {
                        let normalizer = Normalizer {
                            reference,
                            mapping: &options.mapping,
                            crs: crs.clone(),
                            crs_note: note.clone(),
                            orientation_matters: matches!(layer.driver.as_str(), "GeoJSON" | source::OWN_GEOJSON),
                        };
                        chunk.par_iter().map(|r| confine(normalizer.normalize(r), &area)).collect()
                    }
                    None => chunk
                        .iter()
                        .map(|r| {
                            let reason = Reason::new(
                                ReasonCode::NoCrs,
                                "the file declares no CRS and its commune is unknown: pass --crs",
                            );
                            Outcome {
                                feature: r.feature,
                                verdict: Verdict::Rejected,
                                reasons: vec![reason],
                                key: None,
                                parcel: None,
                                withheld: None,
                            }
                        })
                        .collect(),
                };
                let outcomes_len = outcomes.len();
                features += outcomes_len as u64;
                let processed: Vec<Processed> = outcomes
                    .into_iter()
                    .zip(chunk)
                    .map(|(outcome, record)| {
                        let source = (outcome.verdict == Verdict::Rejected).then_some(record);
                        Processed { file: shown.to_owned(), layer: layer.layer.clone(), outcome, source }
                    })
                    .collect();
                sink(processed)?;
                progress(done.fetch_add(outcomes_len, Ordering::Relaxed) + outcomes_len);
            }
            reader.join().unwrap_or_else(|_| {
                Err(SourceError::Unreadable { file: layer.file.clone(), reason: "the reader thread failed".into() })
            })
        })?;
        let (crs, basis, _) = decided.unwrap_or((None, "empty layer".into(), None));
        layers.push(LayerReport {
            file: shown.to_owned(),
            layer: layer.layer.clone(),
            driver: layer.driver.clone(),
            features,
            crs: crs.map_or_else(|| "unknown".into(), |c| c.name()),
            crs_basis: basis,
            encoding: layer.encoding.clone(),
        });
    }
    if layers.iter().all(|l| l.features == 0) {
        return Err(SourceError::Unreadable { file: file.clone(), reason: nothing_read(&layers) });
    }
    Ok(layers)
}

/// Why a file gave no records, for an error: a file of no records is refused, never reported as
/// "0 records" and a success.
fn nothing_read(layers: &[LayerReport]) -> String {
    let driver = layers.first().map_or("", |l| l.driver.as_str());
    let hint = match driver {
        source::OWN_GEOJSON => "its FeatureCollection is empty",
        "DXF" | "DGN" => "no closed polylines or polygons in it (a truncated or damaged drawing?)",
        _ => "a truncated or damaged file, or one of another kind?",
    };
    let names: Vec<&str> = layers.iter().map(|l| l.layer.as_str()).collect();
    format!(
        "no features could be read ({} layer{} {}, read as {driver}): {hint}",
        layers.len(),
        if layers.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// One record's verdict, kept for the report while its parcel moves on.
#[derive(Debug, Clone)]
struct Entry {
    /// Index into [`Ledger::sources`].
    source: u32,
    feature: usize,
    key: Option<ParcelKey>,
    verdict: Verdict,
    reasons: Vec<Reason>,
}

/// Every record of an upload, in the order judged: its verdict and reasons, plus what the checks
/// over the whole upload need (the keys and outlines of the records that yielded a parcel). A few
/// hundred bytes a record, however large the parcels.
#[derive(Debug, Default)]
pub struct Ledger {
    sources: Vec<(PathBuf, String)>,
    entries: Vec<Entry>,
    by_key: HashMap<ParcelKey, Vec<usize>>,
    outlines: Vec<(usize, geo::MultiPolygon<f64>)>,
}

impl Ledger {
    /// Records a chunk; returns the entry number of its first record (the others follow).
    pub fn record(&mut self, chunk: &[Processed]) -> usize {
        let first = self.entries.len();
        for p in chunk {
            let source = match self.sources.iter().rposition(|(f, l)| *f == p.file && *l == p.layer) {
                Some(i) => i,
                None => {
                    self.sources.push((p.file.clone(), p.layer.clone()));
                    self.sources.len() - 1
                }
            };
            let entry = self.entries.len();
            if let Some(parcel) = &p.outcome.parcel {
                self.by_key.entry(parcel.key.clone()).or_default().push(entry);
                self.outlines.push((entry, parcel.geometry.clone()));
            }
            self.entries.push(Entry {
                source: u32::try_from(source).unwrap_or(u32::MAX),
                feature: p.outcome.feature,
                key: p.outcome.key.clone(),
                verdict: p.outcome.verdict,
                reasons: p.outcome.reasons.clone(),
            });
        }
        first
    }

    /// Rejects an entry for a reason found later (the store already has its key).
    pub fn reject(&mut self, entry: usize, reason: Reason) {
        if let Some(e) = self.entries.get_mut(entry) {
            e.reasons.push(reason);
            e.verdict = Verdict::Rejected;
        }
    }

    pub fn is_rejected(&self, entry: usize) -> bool {
        self.entries.get(entry).is_some_and(|e| e.verdict == Verdict::Rejected)
    }

    /// The first entry whose parcel has `key`.
    pub fn first_with_key(&self, key: &ParcelKey) -> Option<usize> {
        self.by_key.get(key).and_then(|e| e.first().copied())
    }

    pub fn key(&self, entry: usize) -> Option<&ParcelKey> {
        self.entries.get(entry).and_then(|e| e.key.as_ref())
    }

    /// The reasons of an entry, for its quarantine record.
    pub fn reasons(&self, entry: usize) -> &[Reason] {
        self.entries.get(entry).map_or(&[], |e| &e.reasons)
    }

    /// Where an entry came from: file, layer and feature number.
    pub fn origin(&self, entry: usize) -> Option<(&Path, &str, usize)> {
        let e = self.entries.get(entry)?;
        let (file, layer) = self.sources.get(e.source as usize)?;
        Some((file, layer, e.feature))
    }

    /// The checks over the whole upload. A natural key that occurs more than once is rejected in
    /// every occurrence, since nothing says which one is right; neighbours that overlap both get a
    /// warning naming the other. Returns the entries rejected here, whose parcels must not stay.
    pub fn finish(&mut self) -> Vec<usize> {
        let mut rejected = Vec::new();
        let mut keys: Vec<(&ParcelKey, &Vec<usize>)> = self.by_key.iter().filter(|(_, e)| e.len() > 1).collect();
        keys.sort();
        let mut duplicates: Vec<(usize, Reason)> = Vec::new();
        for (key, entries) in keys {
            for entry in entries {
                let reason = Reason::new(
                    ReasonCode::DuplicateKeyInUpload,
                    format!("{key} occurs {} times in this upload", entries.len()),
                );
                duplicates.push((*entry, reason));
            }
        }
        for (entry, reason) in duplicates {
            if !self.is_rejected(entry) {
                self.reject(entry, reason);
                rejected.push(entry);
            }
        }
        rejected.sort_unstable();

        let outlines: Vec<(usize, &geo::MultiPolygon<f64>)> =
            self.outlines.iter().filter(|(e, _)| !self.is_rejected(*e)).map(|(e, g)| (*e, g)).collect();
        let geometries: Vec<&geo::MultiPolygon<f64>> = outlines.iter().map(|(_, g)| *g).collect();
        let found = crate::overlap::overlapping(&geometries);
        let mut warnings: Vec<(usize, Reason)> = Vec::new();
        for (k, others) in found.into_iter().enumerate() {
            if others.is_empty() {
                continue;
            }
            let names: Vec<String> = others
                .iter()
                .filter_map(|o| self.entries[outlines[*o].0].key.as_ref().map(ToString::to_string))
                .collect();
            let more = if others.len() == crate::overlap::MAX_LISTED { " and perhaps more" } else { "" };
            warnings.push((
                outlines[k].0,
                Reason::new(ReasonCode::Overlap, format!("overlaps {}{more}", names.join(", "))),
            ));
        }
        for (entry, reason) in warnings {
            let e = &mut self.entries[entry];
            e.reasons.push(reason);
            e.verdict = crate::verdict::verdict_of(&e.reasons);
        }
        self.outlines = Vec::new();
        rejected
    }

    /// The report: totals, reasons, and every record that is not plainly accepted.
    pub fn report(&self, layers: Vec<LayerReport>) -> ImportReport {
        let mut report = ImportReport { layers, ..ImportReport::default() };
        for e in &self.entries {
            report.input += 1;
            match e.verdict {
                Verdict::Accepted => report.accepted += 1,
                Verdict::AcceptedWithWarnings => report.accepted_with_warnings += 1,
                Verdict::Repaired => report.repaired += 1,
                Verdict::Rejected => report.rejected += 1,
            }
            let mut codes: Vec<ReasonCode> = e.reasons.iter().map(|r| r.code).collect();
            codes.sort();
            codes.dedup();
            for code in codes {
                *report.reasons.entry(code).or_default() += 1;
            }
            if e.verdict != Verdict::Accepted {
                let (file, layer) = self.sources.get(e.source as usize).cloned().unwrap_or_default();
                report.records.push(RecordReport {
                    file,
                    layer,
                    feature: e.feature,
                    key: e.key.as_ref().map(ToString::to_string),
                    verdict: e.verdict,
                    reasons: e.reasons.clone(),
                });
            }
        }
        report
    }
}

/// Rejects an outcome whose commune lies outside the upload's area.
fn confine(mut outcome: Outcome, area: &WriteArea<'_>) -> Outcome {
    let Some(key) = &outcome.key else { return outcome };
    if outcome.verdict != Verdict::Rejected && !area.admits(&key.commune) {
        outcome.reasons.push(Reason::new(
            ReasonCode::OutsideUploaderArea,
            format!("commune {} is outside {}", key.commune, area.describe()),
        ));
        outcome.verdict = Verdict::Rejected;
        outcome.parcel = None;
    }
    outcome
}
