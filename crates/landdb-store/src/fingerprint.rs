//! A fingerprint of a parcel's content, stored with each version, so a replacing upload can leave
//! unchanged parcels untouched.

use landdb_model::Parcel;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) over the geometry's WKB and every other field, right holders included.
pub fn fingerprint(parcel: &Parcel) -> String {
    let mut hasher = Sha256::new();
    hasher.update(crate::geometry::to_wkb(&parcel.geometry));
    let mut rest = parcel.clone();
    rest.geometry = geo::MultiPolygon(Vec::new());
    // Serialising plain data cannot fail.
    hasher.update(serde_json::to_vec(&rest).unwrap_or_default());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
