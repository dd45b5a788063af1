//! The demo's second import, so that the samples have a history: the first sample commune
//! delivered again, whole, in replace-commune mode, with one parcel given a new land-use right
//! certificate. That parcel gets a second version; the others are unchanged. The revised file is
//! written the same way each time, so running the demo again finds its batch and changes nothing.

use std::path::{Path, PathBuf};

use geo::InteriorPoint;
use landdb_ingest::import::{self, Imported, Mode, Submitter};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::Canonical;
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, ParcelStore};

/// The revised commune file, written to a folder of its own (removed when dropped).
pub struct Revision {
    folder: PathBuf,
    file: PathBuf,
    /// The certificate number before and after.
    pub certificate: (String, String),
    /// A point inside the changed parcel (WGS84 longitude, latitude).
    pub inside: (f64, f64),
}

impl Drop for Revision {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Revision {
    /// The revision of the samples at `samples` (a GeoJSON file, or a folder whose first GeoJSON
    /// file is taken), or `None` when they hold no such file or no parcel with a certificate
    /// number (as the field mapping names it).
    pub fn prepare(samples: &Path, options: &Options) -> anyhow::Result<Option<Self>> {
        let Some(source) = first_geojson(samples) else { return Ok(None) };
        let text = std::fs::read_to_string(&source)
            .map_err(|e| anyhow::anyhow!("cannot read the sample {}: {e}", source.display()))?;
        let mut collection: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("the sample {} is not JSON: {e}", source.display()))?;
        // A legacy `crs` member means projected coordinates: no WGS84 point to find the parcel by.
        if collection.get("crs").is_some() {
            return Ok(None);
        }
        let Some(features) = collection.get_mut("features").and_then(serde_json::Value::as_array_mut) else {
            return Ok(None);
        };
        let Some((feature, field, old)) = features.iter_mut().find_map(|f| {
            let (field, old) = f["properties"].as_object()?.iter().find_map(|(name, value)| {
                let certificate = options.mapping.canonical(name) == Some(Canonical::CertificateNo);
                Some((name.clone(), value.as_str().filter(|_| certificate)?.to_owned()))
            })?;
            Some((f, field, old))
        }) else {
            return Ok(None);
        };
        let geometry: geojson::Geometry = serde_json::from_value(feature["geometry"].clone())
            .map_err(|e| anyhow::anyhow!("the sample {}: a parcel's geometry: {e}", source.display()))?;
        let geometry = geo::Geometry::<f64>::try_from(&geometry.value)
            .map_err(|e| anyhow::anyhow!("the sample {}: a parcel's geometry: {e}", source.display()))?;
        let Some(inside) = geometry.interior_point() else { return Ok(None) };
        // A reissued certificate keeps its series and gains a suffix: always a change.
        let new = format!("{old}-2");
        feature["properties"][&field] = new.clone().into();

        static REVISIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let folder = std::env::temp_dir().join(format!(
            "landdb-demo-{}-{}",
            std::process::id(),
            REVISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&folder)
            .map_err(|e| anyhow::anyhow!("cannot create the folder {}: {e}", folder.display()))?;
        let stem = source.file_stem().map_or_else(|| "samples".into(), |s| s.to_string_lossy().into_owned());
        let file = folder.join(format!("{stem}-new-certificate.geojson"));
        let revision = Self { folder, file, certificate: (old, new), inside: (inside.x(), inside.y()) };
        std::fs::write(&revision.file, collection.to_string())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", revision.file.display()))?;
        Ok(Some(revision))
    }

    /// The revised file's name, as the batch records it.
    pub fn name(&self) -> String {
        self.file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Imports the revision in replace-commune mode, once: a second run finds the batch by its
    /// content and changes nothing.
    pub async fn import(
        &self,
        store: &AnyStore,
        reference: &ReferenceData,
        options: &Options,
    ) -> anyhow::Result<Imported> {
        Ok(import::import(store, std::slice::from_ref(&self.file), reference, options, Mode::ReplaceCommune, &|_| {})
            .await?)
    }
}

/// Whether the store holds the demo's own import of `samples`: the revision replaces one of their
/// communes, so it is never imported into a store the demo did not fill.
pub async fn samples_loaded(store: &AnyStore, samples: &Path) -> anyhow::Result<bool> {
    let Ok(hash) = import::content_hash(&[samples.to_path_buf()], Mode::Append, &Submitter::Operator) else {
        return Ok(false);
    };
    Ok(store.batch_by_content_hash(&hash).await?.is_some())
}

/// `samples` if it is a GeoJSON file, or the first GeoJSON file in it (by name).
fn first_geojson(samples: &Path) -> Option<PathBuf> {
    let is_geojson = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("geojson"));
    if samples.is_file() {
        return is_geojson(samples).then(|| samples.to_path_buf());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples).ok()?.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    files.into_iter().find(|p| p.is_file() && is_geojson(p))
}
