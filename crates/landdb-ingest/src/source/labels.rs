//! CAD files (DXF, DGN) carry a parcel's attributes as a text label drawn inside its boundary, not
//! as fields. Labels are joined to the closed polylines that contain them and read as
//! `commune/sheet/number land-use area` (the layout survey offices and landdb-gen write); the
//! pieces become the attributes `MaXa`, `SoHieuToBanDo`, `SoThuTuThua`, `KyHieuMucDichSuDung` and
//! `DienTich`, which the field profile then maps like any other file's.

use geo::{BoundingRect, Contains, LineString, Point, Polygon};
use rstar::primitives::GeomWithData;
use rstar::{AABB, RTree};

use super::{AttrValue, SourceGeometry, SourceRecord};

/// A label's text and where it is drawn.
fn label(record: &SourceRecord) -> Option<(Point<f64>, String)> {
    let text = record.attribute("Text")?.text()?;
    match record.geometry {
        SourceGeometry::Point(c) => Some((Point::from(c), text)),
        _ => None,
    }
}

/// The attributes a label text carries.
fn parse(text: &str) -> Vec<(String, AttrValue)> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let parts: Vec<&str> = token.split('/').collect();
        if parts.len() == 3 {
            for (name, value) in ["MaXa", "SoHieuToBanDo", "SoThuTuThua"].into_iter().zip(parts) {
                out.push((name.to_owned(), AttrValue::Text(value.to_owned())));
            }
        } else if let Ok(area) = token.parse::<f64>() {
            out.push(("DienTich".to_owned(), AttrValue::Real(area)));
        } else if token.chars().all(|c| c.is_ascii_uppercase() || c == '+') {
            out.push(("KyHieuMucDichSuDung".to_owned(), AttrValue::Text(token.to_owned())));
        }
    }
    out
}

/// Gives each polygon the attributes of the first label (in file order) inside it; labels
/// themselves are dropped, and feature numbers stay those of the file. Labels are found through
/// an R-tree of their points: a drawing of tens of thousands of parcels and labels costs a few
/// tests a parcel, not one a label.
pub fn attach(records: Vec<SourceRecord>) -> Vec<SourceRecord> {
    let labels: Vec<(Point<f64>, String)> = records.iter().filter_map(label).collect();
    let points: Vec<GeomWithData<[f64; 2], usize>> = labels
        .iter()
        .enumerate()
        .filter(|(_, (p, _))| p.x().is_finite() && p.y().is_finite())
        .map(|(i, (p, _))| GeomWithData::new([p.x(), p.y()], i))
        .collect();
    let tree = RTree::bulk_load(points);
    records
        .into_iter()
        .filter(|r| label(r).is_none())
        .map(|mut r| {
            if let SourceGeometry::Polygons(polys) = &r.geometry {
                let shapes: Vec<Polygon<f64>> = polys
                    .iter()
                    .filter_map(|rings| rings.first())
                    .map(|ring| Polygon::new(LineString(ring.to_vec()), vec![]))
                    .collect();
                let first = shapes
                    .iter()
                    .filter_map(|shape| {
                        let rect = shape.bounding_rect()?;
                        let envelope = AABB::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
                        tree.locate_in_envelope(&envelope)
                            .filter(|candidate| shape.contains(&labels[candidate.data].0))
                            .map(|candidate| candidate.data)
                            .min()
                    })
                    .min();
                if let Some(i) = first {
                    r.attributes.extend(parse(&labels[i].1));
                }
            }
            r
        })
        .collect()
}
