//! The store's bulk path for parcels already read and judged: one batch, chunked `COPY`. Used by
//! the benchmarks and tests that measure the store alone; `import` is the full pipeline.

use std::path::{Path, PathBuf};

use landdb_model::{Parcel, ReferenceData};
use landdb_store::{BatchInfo, BatchWriter, NewBatch, ParcelStore, StoreError};

use crate::SourceError;
use crate::pipeline::{self, Options};
use crate::profiles::FieldMapping;

/// Parcels per `COPY`: large enough to amortise the round trip, small enough to stream.
pub const CHUNK: usize = 5_000;

/// The parcels the pipeline accepts from `files` (rejected records left out), in file order.
pub fn accepted_parcels(
    reference: &ReferenceData,
    files: &[PathBuf],
    scratch: &Path,
) -> Result<Vec<Parcel>, SourceError> {
    let mapping = FieldMapping::builtin()
        .map_err(|reason| SourceError::Unreadable { file: "profiles/fields.csv".into(), reason })?;
    let options = Options { crs_override: None, mapping };
    let (processed, _) = pipeline::run(files, scratch, reference, &options, &|_| {})?;
    Ok(processed.into_iter().filter_map(|p| p.outcome.parcel).collect())
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
