//! Writing records in the forms provinces deliver. Shapefile, GeoPackage and MapInfo TAB go
//! through GDAL; GeoJSON, Esri JSON and DXF (R12) are written directly, because GDAL cannot write
//! Esri JSON, cannot attach attributes to DXF entities, and because defects such as unclosed rings
//! must reach the file exactly as generated.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use gdal::vector::{Feature, FieldValue, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use gdal::{DriverManager, spatial_ref::SpatialRef};
use geo::Coord;
use landdb_crs::Transformer;
use landdb_model::Vn2000Zone;
use serde_json::{Map, Value, json};

use crate::layout::{FieldKind, Layout, fields, values};
use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// RFC 7946 GeoJSON in WGS84.
    Geojson,
    /// GeoJSON in the TM-3 zone with a legacy `crs` member, as older tools write it.
    GeojsonTm3,
    Shapefile,
    Gpkg,
    Tab,
    Dxf,
    Esrijson,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Geojson | Self::GeojsonTm3 => "geojson",
            Self::Shapefile => "shp",
            Self::Gpkg => "gpkg",
            Self::Tab => "tab",
            Self::Dxf => "dxf",
            Self::Esrijson => "json",
        }
    }
}

/// Text encoding of Shapefile attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    Utf8,
    Tcvn3,
    Vni,
}

/// What the `.cpg` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cpg {
    /// Names the encoding the bytes are in.
    Correct,
    Absent,
    /// Says UTF-8 whatever the bytes are.
    Wrong,
}

/// What the `.prj` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prj {
    /// ArcGIS-style WKT of the right zone, naming no EPSG code.
    Arcgis,
    Absent,
    /// ArcGIS-style WKT of a neighbouring zone (central meridian 0.75° off).
    Wrong,
}

/// How one file is to be written.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FileOptions {
    pub format: Format,
    pub layout: Layout,
    pub encoding: TextEncoding,
    pub cpg: Cpg,
    pub prj: Prj,
}

/// ArcGIS's WKT for a VN-2000 TM-3 zone: no TOWGS84, no EPSG code, as ArcMap writes it.
pub fn arcgis_prj(central_meridian: f64) -> String {
    let degrees = central_meridian.trunc();
    let minutes = ((central_meridian - degrees) * 60.0).round();
    format!(
        "PROJCS[\"VN_2000_TM3_{degrees}_{minutes:02}\",GEOGCS[\"GCS_VN_2000\",DATUM[\"D_Vietnam_2000\",\
         SPHEROID[\"WGS_1984\",6378137.0,298.257223563]],PRIMEM[\"Greenwich\",0.0],UNIT[\"Degree\",0.0174532925199433]],\
         PROJECTION[\"Transverse_Mercator\"],PARAMETER[\"False_Easting\",500000.0],PARAMETER[\"False_Northing\",0.0],\
         PARAMETER[\"Central_Meridian\",{central_meridian}],PARAMETER[\"Scale_Factor\",0.9999],\
         PARAMETER[\"Latitude_Of_Origin\",0.0],UNIT[\"Meter\",1.0]]"
    )
}

/// Writes `records` to `path` (its extension fixed by the format); returns the main file.
pub fn write(path: &Path, records: &[Record], zone: &Vn2000Zone, options: &FileOptions) -> anyhow::Result<PathBuf> {
    // Two GeoJSON flavours may sit side by side.
    let path = match options.format {
        Format::GeojsonTm3 => path.with_extension("tm3.geojson"),
        _ => path.with_extension(options.format.extension()),
    };
    match options.format {
        Format::Geojson => {
            write_geojson(&path, records, options.layout, Some(&Transformer::zone_to_wgs84(zone)?), zone)
        }
        Format::GeojsonTm3 => write_geojson(&path, records, options.layout, None, zone),
        Format::Esrijson => write_esrijson(&path, records, options.layout, zone),
        Format::Dxf => write_dxf(&path, records),
        Format::Shapefile | Format::Gpkg | Format::Tab => write_gdal(&path, records, zone, options),
    }
    .with_context(|| format!("cannot write {}", path.display()))?;
    if options.format == Format::Shapefile {
        finish_shapefile(&path, zone, options)?;
    }
    Ok(path)
}

fn properties(layout: Layout, r: &Record) -> Map<String, Value> {
    fields(layout).iter().map(|(name, _)| (*name).to_owned()).zip(values(layout, r)).collect()
}

fn ring_json(ring: &[Coord<f64>], to_wgs84: Option<&Transformer>) -> anyhow::Result<Value> {
    let coords = ring
        .iter()
        .map(|c| match to_wgs84 {
            Some(t) => t.coord(*c).map(|p| json!([p.x, p.y])),
            None => Ok(json!([c.x, c.y])),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(coords))
}

fn write_geojson(
    path: &Path,
    records: &[Record],
    layout: Layout,
    to_wgs84: Option<&Transformer>,
    zone: &Vn2000Zone,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"{\"type\":\"FeatureCollection\",")?;
    if to_wgs84.is_none() {
        write!(
            out,
            "\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"urn:ogc:def:crs:EPSG::{}\"}}}},",
            zone.epsg
        )?;
    }
    out.write_all(b"\"features\":[\n")?;
    for (i, r) in records.iter().enumerate() {
        let geometry = match &r.ring {
            Some(ring) => json!({ "type": "Polygon", "coordinates": [ring_json(ring, to_wgs84)?] }),
            None => Value::Null,
        };
        let feature = json!({ "type": "Feature", "properties": properties(layout, r), "geometry": geometry });
        if i > 0 {
            out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut out, &feature)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(())
}

fn write_esrijson(path: &Path, records: &[Record], layout: Layout, zone: &Vn2000Zone) -> anyhow::Result<()> {
    let esri_type = |k: FieldKind| match k {
        FieldKind::Text => "esriFieldTypeString",
        FieldKind::Integer => "esriFieldTypeInteger",
        FieldKind::Real => "esriFieldTypeDouble",
    };
    let field_list: Vec<Value> = std::iter::once(json!({ "name": "OBJECTID", "type": "esriFieldTypeOID" }))
        .chain(fields(layout).iter().map(|(name, kind)| json!({ "name": name, "type": esri_type(*kind) })))
        .collect();
    let features: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut attributes = properties(layout, r);
            attributes.insert("OBJECTID".into(), json!(i + 1));
            // Esri rings: exterior clockwise; we write the ring as generated, reversed.
            let geometry = r.ring.as_ref().map_or(Value::Null, |ring| {
                let rev: Vec<Value> = ring.iter().rev().map(|c| json!([c.x, c.y])).collect();
                json!({ "rings": [rev] })
            });
            json!({ "attributes": attributes, "geometry": geometry })
        })
        .collect();
    // Keys in ArcGIS's order: GDAL recognises Esri JSON by `geometryType` near the start.
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    write!(
        out,
        "{{\"displayFieldName\":\"SoThuTuThua\",\"geometryType\":\"esriGeometryPolygon\",\"spatialReference\":{{\"wkid\":{0},\"latestWkid\":{0}}},\"fields\":{1},\"features\":{2}}}",
        zone.epsg,
        Value::Array(field_list),
        Value::Array(features)
    )?;
    out.flush()?;
    Ok(())
}

/// DXF R12 as survey CAD exports it: each parcel a closed polyline on layer `THUA`, and its label
/// (`commune/sheet/number land-use area`) a TEXT entity inside the parcel on layer `NHAN`.
fn write_dxf(path: &Path, records: &[Record]) -> anyhow::Result<()> {
    let mut s = String::from("0\nSECTION\n2\nENTITIES\n");
    for r in records {
        let Some(ring) = &r.ring else { continue };
        let open = if ring.first() == ring.last() { &ring[..ring.len() - 1] } else { &ring[..] };
        let _ = write!(s, "0\nPOLYLINE\n8\nTHUA\n66\n1\n70\n1\n10\n0.0\n20\n0.0\n30\n0.0\n");
        for c in open {
            let _ = write!(s, "0\nVERTEX\n8\nTHUA\n10\n{:.3}\n20\n{:.3}\n30\n0.0\n", c.x, c.y);
        }
        s.push_str("0\nSEQEND\n8\nTHUA\n");
        let inside = {
            use geo::InteriorPoint;
            geo::Polygon::new(geo::LineString(open.to_vec()), vec![]).interior_point().map(|p| p.0)
        };
        if let Some(c) = inside.as_ref() {
            let _ = write!(
                s,
                "0\nTEXT\n8\nNHAN\n10\n{:.3}\n20\n{:.3}\n30\n0.0\n40\n1.0\n1\n{} {} {}\n",
                c.x,
                c.y,
                r.key(),
                r.land_use,
                r.area
            );
        }
    }
    s.push_str("0\nENDSEC\n0\nEOF\n");
    std::fs::write(path, s)?;
    Ok(())
}

fn ring_wkt(ring: &[Coord<f64>]) -> String {
    let pts: Vec<String> = ring.iter().map(|c| format!("{} {}", c.x, c.y)).collect();
    format!("POLYGON (({}))", pts.join(","))
}

fn write_gdal(path: &Path, records: &[Record], zone: &Vn2000Zone, options: &FileOptions) -> anyhow::Result<()> {
    let (driver, layer_options): (&str, &[&str]) = match options.format {
        // Raw bytes: no recoding by GDAL (legacy encodings are written by us afterwards).
        Format::Shapefile => ("ESRI Shapefile", &["ENCODING=UTF-8"]),
        Format::Gpkg => ("GPKG", &[]),
        Format::Tab => ("MapInfo File", &["ENCODING=UTF-8"]),
        _ => anyhow::bail!("{:?} is not written through GDAL", options.format),
    };
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    // A fixed timestamp in GeoPackage metadata, so that the same seed gives the same bytes.
    gdal::config::set_config_option("OGR_CURRENT_DATE", "2026-01-01T00:00:00.000Z")?;
    let mut dataset = DriverManager::get_driver_by_name(driver)?.create_vector_only(path)?;
    let srs = match options.format {
        Format::Gpkg => SpatialRef::from_epsg(zone.epsg)?,
        _ => SpatialRef::from_proj4(&zone.proj_string())?,
    };
    // GeoPackage is SQLite: one transaction, or every feature is its own commit.
    if options.format == Format::Gpkg {
        let mut txn = dataset.start_transaction()?;
        fill_layer(&mut txn, path, records, &srs, options, layer_options)?;
        txn.commit()?;
    } else {
        fill_layer(&mut dataset, path, records, &srs, options, layer_options)?;
    }
    Ok(())
}

fn fill_layer(
    dataset: &mut gdal::Dataset,
    path: &Path,
    records: &[Record],
    srs: &SpatialRef,
    options: &FileOptions,
    layer_options: &[&str],
) -> anyhow::Result<()> {
    let layer_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("parcels").to_owned();
    let layer = dataset.create_layer(LayerOptions {
        name: &layer_name,
        srs: Some(srs),
        ty: OGRwkbGeometryType::wkbPolygon,
        options: Some(layer_options),
    })?;
    let field_defs: Vec<(&str, u32)> = fields(options.layout)
        .iter()
        .map(|(name, kind)| {
            let ty = match kind {
                FieldKind::Text => OGRFieldType::OFTString,
                FieldKind::Integer => OGRFieldType::OFTInteger,
                FieldKind::Real => OGRFieldType::OFTReal,
            };
            (*name, ty)
        })
        .collect();
    layer.create_defn_fields(&field_defs)?;
    for r in records {
        let mut feature = Feature::new(layer.defn())?;
        for (idx, value) in values(options.layout, r).into_iter().enumerate() {
            let field = match value {
                Value::String(s) => FieldValue::StringValue(s),
                Value::Number(n) if n.is_i64() => {
                    FieldValue::IntegerValue(n.as_i64().and_then(|v| i32::try_from(v).ok()).unwrap_or(0))
                }
                Value::Number(n) => FieldValue::RealValue(n.as_f64().unwrap_or(0.0)),
                _ => continue,
            };
            feature.set_field(idx, &field)?;
        }
        if let Some(ring) = &r.ring {
            feature.set_geometry(Geometry::from_wkt(&ring_wkt(ring))?)?;
        }
        feature.create(&layer)?;
    }
    Ok(())
}

/// The side files of a Shapefile: legacy text encoding, `.cpg` and `.prj` as asked.
fn finish_shapefile(shp: &Path, zone: &Vn2000Zone, options: &FileOptions) -> anyhow::Result<()> {
    let encoding = match options.encoding {
        TextEncoding::Utf8 => landdb_text::Encoding::Utf8,
        TextEncoding::Tcvn3 => landdb_text::Encoding::Tcvn3,
        TextEncoding::Vni => landdb_text::Encoding::Vni,
    };
    if encoding != landdb_text::Encoding::Utf8 {
        crate::dbf::recode_text_fields(&shp.with_extension("dbf"), encoding)?;
    }
    let cpg = shp.with_extension("cpg");
    match options.cpg {
        Cpg::Correct => std::fs::write(&cpg, encoding.name())?,
        Cpg::Wrong => std::fs::write(&cpg, "UTF-8")?,
        Cpg::Absent => {
            let _ = std::fs::remove_file(&cpg);
        }
    }
    let prj = shp.with_extension("prj");
    match options.prj {
        Prj::Arcgis => std::fs::write(&prj, arcgis_prj(zone.central_meridian))?,
        Prj::Wrong => std::fs::write(&prj, arcgis_prj(zone.central_meridian - 0.75))?,
        Prj::Absent => {
            let _ = std::fs::remove_file(&prj);
        }
    }
    Ok(())
}
