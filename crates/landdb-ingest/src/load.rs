//! Loading read parcels into the store as one atomic batch, through the bulk path.

use std::collections::HashSet;
use std::path::PathBuf;

use landdb_model::{Parcel, ParcelKey, ReferenceData};
use landdb_store::{BatchInfo, BatchWriter, NewBatch, ParcelStore, StoreError};
use rayon::prelude::*;

use crate::{RecordError, SourceError, geojson_source};

/// Parcels per `COPY`: large enough to amortise the round trip, small enough to stream.
pub const CHUNK: usize = 5_000;

/// What a load did with its input.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub input: usize,
    pub loaded: usize,
    pub rejected: Vec<RecordError>,
    pub duplicate_keys: Vec<ParcelKey>,
    pub batch: Option<BatchInfo>,
}

/// Parcels read from sources, the first of each natural key kept.
#[derive(Debug, Default)]
pub struct ReadParcels {
    pub input: usize,
    pub parcels: Vec<Parcel>,
    pub rejected: Vec<RecordError>,
    pub duplicate_keys: Vec<ParcelKey>,
}

/// Reads GeoJSON files in parallel (one file per core) and keeps the first parcel of each key.
pub fn read_files(reference: &ReferenceData, files: &[PathBuf]) -> Result<ReadParcels, SourceError> {
    let per_file: Vec<_> = files.par_iter().map(|f| geojson_source::read_parcels(f, reference)).collect();
    let mut read = ReadParcels::default();
    let mut seen = HashSet::new();
    for records in per_file {
        for record in records? {
            read.input += 1;
            match record {
                Ok(parcel) if seen.insert(parcel.key.clone()) => read.parcels.push(parcel),
                Ok(parcel) => read.duplicate_keys.push(parcel.key),
                Err(e) => read.rejected.push(e),
            }
        }
    }
    Ok(read)
}

/// Inserts `parcels` in one batch: committed whole, or rolled back and the error returned.
pub async fn store_parcels<S: ParcelStore>(
    store: &S,
    source: String,
    parcels: &[Parcel],
    summary: serde_json::Value,
) -> Result<BatchInfo, StoreError> {
    let mut batch =
        store.begin_batch(NewBatch { source, province_code: None, content_hash: None, mode: "append".into() }).await?;
    for chunk in parcels.chunks(CHUNK) {
        if let Err(e) = batch.insert(chunk).await {
            batch.rollback().await?;
            return Err(e);
        }
    }
    batch.commit(summary).await
}

/// Reads `files` and loads them as one batch.
pub async fn load_files<S: ParcelStore>(
    store: &S,
    reference: &ReferenceData,
    files: &[PathBuf],
) -> Result<LoadReport, LoadError> {
    let read = read_files(reference, files)?;
    let summary = serde_json::json!({
        "input": read.input,
        "loaded": read.parcels.len(),
        "rejected": read.rejected.len(),
        "duplicate_keys": read.duplicate_keys.len(),
    });
    let source = files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let batch = store_parcels(store, source, &read.parcels, summary).await?;
    Ok(LoadReport {
        input: read.input,
        loaded: read.parcels.len(),
        rejected: read.rejected,
        duplicate_keys: read.duplicate_keys,
        batch: Some(batch),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0} (the batch was rolled back; the store is as it was)")]
    Store(#[from] StoreError),
}
