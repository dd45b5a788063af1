//! The parcel `landdb demo` points at, and the lookups that find it: by a point inside it (WGS84,
//! and in its VN-2000 TM-3 zone), by national ID, by natural key, and its history. Everything is
//! read from the store, so every address printed answers with this parcel.

use geo::{Contains, InteriorPoint};
use landdb_crs::Transformer;
use landdb_model::{NationalParcelId, ParcelKey, ParcelVersion, ReferenceData, VersionId, Vn2000Zone};
use landdb_store::{AnyStore, ParcelStore};

#[derive(Debug, Clone)]
pub struct Showcase {
    pub key: ParcelKey,
    pub national_id: NationalParcelId,
    /// A point inside the parcel (WGS84 longitude, latitude), as printed.
    pub point: (String, String),
    /// The same point in the parcel's TM-3 zone (easting, northing, as printed).
    pub zone_point: Option<(Vn2000Zone, String, String)>,
    /// The current version, when the parcel has earlier ones.
    pub with_history: Option<VersionId>,
    /// The citizen ID of its first right holder who has one (the samples' holders are synthetic).
    pub holder: Option<String>,
}

impl Showcase {
    /// The current parcel at `near` (WGS84), or else the first current parcel; `None` for an empty
    /// store.
    pub async fn find(
        store: &AnyStore,
        reference: &ReferenceData,
        near: Option<(f64, f64)>,
    ) -> anyhow::Result<Option<Self>> {
        let at_point = match near {
            Some((lon, lat)) => {
                store.at_point_on(lon, lat, chrono::Utc::now()).await?.into_iter().find(ParcelVersion::is_current)
            }
            None => None,
        };
        let version = match at_point {
            Some(v) => v,
            None => match store.current_page(None, 1).await?.into_iter().next() {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        let geometry = &version.parcel.geometry;
        let Some(inside) = geometry.interior_point() else { return Ok(None) };
        // Seven decimals are about a centimetre; the point stays inside unless the parcel is
        // thinner than that, and then it is written in full.
        let point = match (format!("{:.7}", inside.x()), format!("{:.7}", inside.y())) {
            (lon, lat) if contains(geometry, &lon, &lat) => (lon, lat),
            _ => (inside.x().to_string(), inside.y().to_string()),
        };
        let key = version.parcel.key.clone();
        let zone_point = match reference.zone_of_commune(&key.commune) {
            Some(zone) => in_zone(&zone, inside, geometry)?,
            None => None,
        };
        let with_history = (store.history(&key).await?.len() > 1).then_some(version.id);
        let holder = store.right_holders(version.id).await?.into_iter().find_map(|h| h.citizen_id);
        Ok(Some(Self { key, national_id: version.parcel.national_id.clone(), point, zone_point, with_history, holder }))
    }

    /// What to look the parcel up by, each with the path (and query) that does it.
    pub fn lookups(&self) -> Vec<Lookup> {
        let (lon, lat) = &self.point;
        let key = &self.key;
        let lookup = |what, path, to_try| Lookup { what, path, to_try };
        let mut lookups = vec![lookup("at a point", format!("/parcels/at?lon={lon}&lat={lat}"), true)];
        if let Some((zone, x, y)) = &self.zone_point {
            let path = format!("/parcels/at?x={x}&y={y}&point-crs=EPSG:{}", zone.epsg);
            lookups.push(lookup("at a TM-3 point", path, false));
        }
        lookups.push(lookup("by national ID", format!("/parcels/national-id/{}", self.national_id.as_str()), false));
        lookups.push(lookup("by key", landdb_api::routes::key_path(key), false));
        if let Some(version) = self.with_history {
            lookups.push(lookup("its history", format!("/collections/parcels/items/{version}/history"), true));
        }
        if let Some(citizen) = &self.holder {
            lookups.push(lookup("by its holder", format!("/holders/{citizen}/parcels"), false));
        }
        lookups
    }
}

/// One way to find the showcase parcel over HTTP.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub what: &'static str,
    /// The path and query, after the server's address.
    pub path: String,
    /// Whether it is one of the few `curl` lines to try.
    pub to_try: bool,
}

/// `inside` in `zone`'s easting and northing, to the millimetre, if that still lands inside the
/// parcel when taken back to WGS84.
fn in_zone(
    zone: &Vn2000Zone,
    inside: geo::Point<f64>,
    geometry: &geo::MultiPolygon<f64>,
) -> anyhow::Result<Option<(Vn2000Zone, String, String)>> {
    let there = Transformer::wgs84_to_zone(zone)?.coord(inside.0)?;
    let (x, y) = (format!("{:.3}", there.x), format!("{:.3}", there.y));
    let (Ok(easting), Ok(northing)) = (x.parse::<f64>(), y.parse::<f64>()) else { return Ok(None) };
    let back = Transformer::zone_to_wgs84(zone)?.coord(geo::coord! { x: easting, y: northing })?;
    Ok(geometry.contains(&geo::Point::from(back)).then_some((*zone, x, y)))
}

fn contains(geometry: &geo::MultiPolygon<f64>, lon: &str, lat: &str) -> bool {
    matches!((lon.parse::<f64>(), lat.parse::<f64>()), (Ok(x), Ok(y)) if geometry.contains(&geo::Point::new(x, y)))
}
