//! Exports for surveyors: every selected parcel as one GeoJSON FeatureCollection (RFC 7946),
//! streamed a chunk of features at a time from a fixed view of the engine, so memory stays flat
//! whatever the size, a whole province included. The HTTP endpoint and `landdb export` share it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use futures::Stream;
use landdb_engine::View;
use landdb_model::{CommuneCode, VersionId};

use crate::crs::OutputCrs;
use crate::features::{Field, Output, write_feature};
use crate::filter::Filter;

/// Which parcels an export holds.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    /// The parcels of these versions (a commune's, or a box's), in version order.
    Versions(Vec<VersionId>),
}

impl Selection {
    /// The parcels of a commune, in a box, matching a filter (a polygon is a spatial filter), or
    /// all of these, in `view`.
    pub fn of(
        view: &View,
        commune: Option<&CommuneCode>,
        bbox: Option<geo::Rect<f64>>,
        filter: Option<&Filter>,
        access: &crate::access::Access,
    ) -> Self {
        // The box the selection lies in: the request's, the filter's, or the part they share
        // (`disjoint` when they share nothing).
        let (region, disjoint) = match (bbox, filter.and_then(|f| f.bound)) {
            (Some(a), Some(b)) => {
                let shared = crate::filter::overlap(a, b);
                (shared, shared.is_none())
            }
            (a, b) => (a.or(b), false),
        };
        let keep = |p: &landdb_engine::Parcel<'_>| {
            commune.is_none_or(|c| p.commune() == c) && filter.is_none_or(|f| f.matches(p, None)) && access.sees(p)
        };
        let mut versions: Vec<VersionId> = if disjoint {
            Vec::new()
        } else {
            match (commune, region) {
                (None, None) if filter.is_none() && access.sees_everything() => return Selection::All,
                (Some(c), None) => view.in_commune(c).iter().filter(|p| keep(p)).map(|p| p.version()).collect(),
                (_, Some(b)) => view.in_box(b).iter().filter(|p| keep(p)).map(|p| p.version()).collect(),
                (None, None) => view.parcels().filter(|p| keep(p)).map(|p| p.version()).collect(),
            }
        };
        versions.sort_unstable();
        Selection::Versions(versions)
    }

    /// What exporting it discloses: how many parcels, and which versions' personal data when
    /// `personal_fields` are among those written.
    pub fn disclosed(&self, view: &View, personal_fields: bool) -> crate::access::Disclosed {
        let parcels = self.len(view) as u64;
        let personal = if !personal_fields {
            Vec::new()
        } else {
            use crate::access::Disclosed;
            match self {
                Selection::All => view.parcels().filter_map(|p| Disclosed::personal_of(&p)).collect(),
                Selection::Versions(v) => {
                    v.iter().filter_map(|id| view.by_version(*id)).filter_map(|p| Disclosed::personal_of(&p)).collect()
                }
            }
        };
        let versions = match self {
            Selection::All => view.parcels().map(|p| p.version().0).collect(),
            Selection::Versions(v) => v.iter().map(|id| id.0).collect(),
        };
        crate::access::Disclosed { parcels, personal, versions }
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
    view: Arc<View>,
    selection: Selection,
    fields: Vec<Field>,
    crs: OutputCrs,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    // Where the next chunk starts: after a version (all parcels), or at an index (a selection).
    struct State {
        view: Arc<View>,
        selection: Selection,
        fields: Vec<Field>,
        crs: OutputCrs,
        after: Option<VersionId>,
        next: usize,
        written: usize,
        done: bool,
    }
    let state = State { view, selection, fields, crs, after: None, next: 0, written: 0, done: false };
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
        match &s.selection {
            Selection::All => {
                let mut last = None;
                for p in s.view.parcels_after(s.after).take(CHUNK) {
                    write(&mut out, &p, &mut s.written);
                    last = Some(p.version());
                    count += 1;
                }
                s.after = last.or(s.after);
            }
            Selection::Versions(versions) => {
                let end = (s.next + CHUNK).min(versions.len());
                for v in &versions[s.next..end] {
                    if let Some(p) = s.view.by_version(*v) {
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
