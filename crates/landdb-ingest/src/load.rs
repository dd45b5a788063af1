//! The store's bulk path for parcels already read and judged: one batch, chunked `COPY`. Used by
//! the benchmarks and tests that measure the store alone; `import` is the full pipeline.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use landdb_model::{Parcel, ReferenceData};
use landdb_store::{BatchInfo, BatchWriter, NewBatch, ParcelStore, StoreError};

use crate::SourceError;
use crate::pipeline::{self, Ledger, Options};
use crate::profiles::FieldMapping;

/// Parcels per `COPY`: large enough to amortise the round trip, small enough to stream.
pub const CHUNK: usize = 5_000;

/// The parcels the pipeline accepts from `files` (rejected records left out), in file and
/// feature order.
pub fn accepted_parcels(
    reference: &ReferenceData,
    files: &[PathBuf],
    scratch: &Path,
) -> Result<Vec<Parcel>, SourceError> {
    let mapping = FieldMapping::builtin()
        .map_err(|reason| SourceError::Unreadable { file: "profiles/fields.csv".into(), reason })?;
    let options = Options { crs_override: None, mapping, area: None };
    let collected = Mutex::new((Ledger::default(), Vec::<(usize, Parcel)>::new()));
    let stopped = || SourceError::Unreadable { file: PathBuf::new(), reason: "the import stopped".into() };
    let names = crate::names::SourceNames::as_given(files);
    pipeline::stream(files, scratch, &names, reference, &options, &|_| {}, &|chunk| {
        let mut guard = collected.lock().map_err(|_| stopped())?;
        let (ledger, parcels) = &mut *guard;
        let first = ledger.record(&chunk);
        parcels.extend(
            chunk.into_iter().enumerate().filter_map(|(i, p)| p.outcome.parcel.map(|parcel| (first + i, parcel))),
        );
        Ok(())
    })?;
    let (mut ledger, mut parcels) = collected.into_inner().map_err(|_| stopped())?;
    let rejected: HashSet<usize> = ledger.finish().into_iter().collect();
    parcels.retain(|(entry, _)| !rejected.contains(entry));
    parcels.sort_by_cached_key(|(entry, _)| {
        ledger.origin(*entry).map(|(file, layer, feature)| (file.to_owned(), layer.to_owned(), feature))
    });
    Ok(parcels.into_iter().map(|(_, parcel)| parcel).collect())
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
