//! The writers of answers that hold parcels: GeoJSON features, exports (streamed GeoJSON and
//! files through GDAL) and vector tiles. They write only what [`crate::scope`] released: the
//! function that writes one parcel is visible inside this module alone, and its public entry
//! points take a [`crate::scope::Release`] or [`crate::scope::ReleasedSelection`].

pub mod export;
pub mod features;
pub mod formats;
pub mod tiles;
