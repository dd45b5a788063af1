//! Exports for surveyors: every selected parcel as one GeoJSON FeatureCollection (RFC 7946),
//! streamed a chunk of features at a time from a fixed view of the engine, so memory stays flat
//! whatever the size, a whole province included. The HTTP endpoint and `landdb export` share it.

use std::convert::Infallible;

use axum::body::Bytes;
use futures::Stream;
use landdb_engine::{Parcel, View};
use landdb_model::VersionId;

use crate::crs::OutputCrs;
use crate::features::{Field, Output, write_feature};
use crate::scope::ReleasedSelection;

/// Which parcels an export holds.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    /// The parcels of these versions (a commune's, or a box's), in version order.
    Versions(Vec<VersionId>),
}

impl Selection {
    /// Calls `f` with every parcel of the selection in `view`, in version order.
    pub fn for_each<'v>(&self, view: &'v View, mut f: impl FnMut(Parcel<'v>)) {
        match self {
            Selection::All => view.parcels().for_each(f),
            Selection::Versions(v) => v.iter().filter_map(|id| view.by_version(*id)).for_each(&mut f),
        }
    }

    /// How many parcels it holds.
    pub fn len(&self, view: &View) -> usize {
        match self {
            Selection::All => view.len(),
            Selection::Versions(v) => v.len(),
        }
    }
}

/// Features a chunk: about a megabyte.
const CHUNK: usize = 2_000;

/// The export as a stream of byte chunks: the collection's opening, the features a chunk at a
/// time, and its close.
pub fn geojson_stream(
    released: ReleasedSelection,
    fields: Vec<Field>,
    crs: OutputCrs,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    // Where the next chunk starts: after a version (all parcels), or at an index (a selection).
    struct State {
        released: ReleasedSelection,
        fields: Vec<Field>,
        crs: OutputCrs,
        after: Option<VersionId>,
        next: usize,
        written: usize,
        done: bool,
    }
    let state = State { released, fields, crs, after: None, next: 0, written: 0, done: false };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let mut out = Vec::with_capacity(CHUNK * 700);
        if s.written == 0 && s.next == 0 && s.after.is_none() {
            out.extend_from_slice(b"{\"type\":\"FeatureCollection\",\"features\":[");
        }
        let mut buf = Vec::new();
        let mut count = 0;
        // A PROJ object a chunk: it cannot cross threads, and chunks may be made on any.
        let transformer = s.crs.transformer().ok().flatten();
        let output = Output { crs: &s.crs, transformer: transformer.as_ref() };
        let mut write = |out: &mut Vec<u8>, p: &landdb_engine::Parcel<'_>, written: &mut usize| {
            if *written > 0 {
                out.push(b',');
            }
            write_feature(out, p, &s.fields, &mut buf, &output);
            *written += 1;
        };
        let view = s.released.view();
        match s.released.selection() {
            Selection::All => {
                let mut last = None;
                for p in view.parcels_after(s.after).take(CHUNK) {
                    write(&mut out, &p, &mut s.written);
                    last = Some(p.version());
                    count += 1;
                }
                s.after = last.or(s.after);
            }
            Selection::Versions(versions) => {
                let end = (s.next + CHUNK).min(versions.len());
                for v in &versions[s.next..end] {
                    if let Some(p) = view.by_version(*v) {
                        write(&mut out, &p, &mut s.written);
                    }
                }
                count = end - s.next;
                s.next = end;
            }
        }
        if count < CHUNK {
            out.extend_from_slice(b"]}\n");
            s.done = true;
        }
        Some((Ok(Bytes::from(out)), s))
    })
}
